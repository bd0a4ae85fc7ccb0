"""``.ci/mutate.py`` (``make mutate``) reads which survivors docs/developing.md explains, and how."""

from __future__ import annotations

import importlib.util

from tests.helpers import ROOT

spec = importlib.util.spec_from_file_location("mutate", ROOT / ".ci/mutate.py")
mutate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutate)

DOCS = """\
Some prose naming `lit_digest.a.x_f__mutmut_9` before any table.

Equivalent mutants (survivors that cannot change a result):

| `lit_digest.a.x_f__mutmut_1`, `lit_digest.a.xǁCǁm__mutmut_2` | same axis |

Survivors only a GPU run can catch (a tensor on the wrong device):

| `lit_digest.a.x_g__mutmut_3` | `.to(None)` |

Survivors that mutmut itself hides:

| `lit_digest.a.x_h__mutmut_4` | stacklevel |

## Next section

| `lit_digest.a.x_k__mutmut_5` | a later table about something else |
"""


def test_each_table_explains_its_own_survivors_and_nothing_else():
    named = mutate.named_survivors(DOCS, gpu=False)
    assert named == {
        "lit_digest.a.x_f__mutmut_1": "equivalent (docs/developing.md)",
        "lit_digest.a.xǁCǁm__mutmut_2": "equivalent (docs/developing.md)",
        "lit_digest.a.x_g__mutmut_3": "needs a second device (docs/developing.md)",
        "lit_digest.a.x_h__mutmut_4": "hidden by mutmut's wrapper (docs/developing.md)",
    }


def test_on_a_gpu_machine_a_device_mutant_is_not_excused():
    assert "lit_digest.a.x_g__mutmut_3" not in mutate.named_survivors(DOCS, gpu=True)
    assert "lit_digest.a.x_f__mutmut_1" in mutate.named_survivors(DOCS, gpu=True)


def test_the_real_docs_name_the_codistillation_equivalents():
    named = mutate.named_survivors((ROOT / "docs/developing.md").read_text(), gpu=False)
    assert named["lit_digest.codistillation.losses.x_soft_cross_entropy__mutmut_4"].startswith("equivalent")
