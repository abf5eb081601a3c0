"""The shell signing recipe in docs/webhooks.md makes a signature the function accepts (curl replaced by a stub)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dagtrigger.signature import SignedRequest, verify

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = "doc-recipe-secret-0123456789abcdef"


def _recipe() -> str:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```text\n(.*?)```", text, flags=re.S)
    [recipe] = [b for b in blocks if "openssl dgst" in b]
    return recipe


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_shell_recipe_signs_what_the_function_verifies(tmp_path: Path) -> None:
    stub = tmp_path / "curl"
    stub.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    stub.chmod(0o755)
    result = subprocess.run(
        ["bash", "-c", _recipe()],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "WEBHOOK_HMAC_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    args = result.stdout.splitlines()
    header = next(a for a in args if a.startswith("X-Dagtrigger-Signature: "))
    body = args[args.index("--data") + 1].encode()
    request = SignedRequest("POST", "/shop/orders", "", "order-1234", body)
    assert verify([SECRET], header.split(": ", 1)[1], request, 300) == SECRET
    with pytest.raises(ValueError):
        verify([SECRET], header.split(": ", 1)[1], SignedRequest("POST", "/shop/other", "", "order-1234", body), 300)
