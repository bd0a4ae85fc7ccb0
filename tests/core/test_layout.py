"""The house rules of the package, checked on the source: core imports no domain, files stay small,
``import lit_digest`` stays light and installs no warning filter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

PACKAGE = ROOT / "lit_digest"
DOMAINS = {"ssl", "muse", "codistillation", "gan", "tabular", "text", "depth", "lr_control", "tools"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_imports_no_domain():
    offenders = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (PACKAGE / "core").rglob("*.py")
        for name in imported_modules(path)
        if name.startswith("lit_digest.") and name.split(".")[1] in DOMAINS
    }
    assert not offenders, sorted(offenders)


def test_the_check_sees_a_domain_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from lit_digest.ssl.views import ViewAugment\nimport lit_digest.muse.csls\n")
    assert imported_modules(bad) == {"lit_digest.ssl.views", "lit_digest.muse.csls"}


def test_no_source_file_is_over_about_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 420}
    assert not long, long


def test_import_lit_digest_is_light_and_installs_no_warning_filter():
    code = (  # the third-party libraries first: some of them install filters of their own
        "import sys, warnings, torch, torchvision, torchmetrics, sklearn, wandb, lightning.pytorch.cli; "
        "before = list(warnings.filters); import lit_digest; "
        "import lit_digest.ssl, lit_digest.muse, lit_digest.codistillation, lit_digest.cli; "
        "assert warnings.filters == before, [f for f in warnings.filters if f not in before]; "
        "print('ok')"
    )
    light = ("import sys, lit_digest; "
             "print(sorted(m for m in sys.modules if m.startswith(('torch', 'lightning', 'lit_digest.'))))")
    out = subprocess.run([sys.executable, "-c", light], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "['lit_digest._legacy']", out
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_lazy_names_resolve_to_their_domain():
    import lit_digest

    assert lit_digest.BYOL.__mro__[1].__module__ == "lit_digest.ssl.byol"  # 0.1's keywords on top (_legacy)
    assert lit_digest.SmallConvNet.__module__ == "lit_digest.ssl.backbones"
    assert lit_digest.MUSE.__mro__[1].__module__ == "lit_digest.muse.unsupervised"
    assert lit_digest.CodistillationStrategy.__module__ == "lit_digest.codistillation.strategy"
    assert set(lit_digest.__all__) <= set(dir(lit_digest))
