"""A small CLIP (open_clip's model, tokenizer and loss) trained contrastively on captioned images."""

from lit_digest.text2image.clip.module import CLIPModule, build_clip, clip_loss, image_features, retrieval_scores

__all__ = ["CLIPModule", "build_clip", "clip_loss", "image_features", "retrieval_scores"]
