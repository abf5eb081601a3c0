"""Real RS256 ID tokens for Pub/Sub push tests, signed with google-auth's signer; the public key is what a local
certificate endpoint (PUSH_CERTS_URL) serves in place of https://www.googleapis.com/oauth2/v1/certs."""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

AUDIENCE = "https://dagtrigger-push.example.run.app"
PUSHER = "pubsub-push@my-project.iam.gserviceaccount.com"


def _key() -> tuple[str, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


GOOGLE_PRIVATE, GOOGLE_PUBLIC = _key()
ATTACKER_PRIVATE, _ = _key()


def token(private: str = GOOGLE_PRIVATE, kid: str = "k1", **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": PUSHER, "email_verified": True,
              "sub": "1234567890", "iat": now, "exp": now + 3600, **overrides}  # fmt: skip
    signer = crypt.RSASigner.from_string(private, kid)
    return jwt.encode(signer, claims).decode()  # type: ignore[no-untyped-call]
