"""The independent side of the interoperability tests (crates/server/tests/it/interop.rs).

Reads {"checks": [...]} as JSON on standard input and writes one JSON result per check, in order, to
standard output. Byte strings are base64. Everything here uses the Python `cryptography` package, a
different implementation (OpenSSL / AWS-LC as bundled with it) from the server's aws-lc-rs; nothing here
talks to the server.
"""

import base64
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa, utils
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

HASHES = {"SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512,
          "SHA_1": hashes.SHA1}
CURVES = {"ECC_NIST_P256": ec.SECP256R1, "ECC_NIST_P384": ec.SECP384R1, "ECC_NIST_P521": ec.SECP521R1,
          "ECC_SECG_P256K1": ec.SECP256K1}
ML_DSA = {"ML_DSA_44": mldsa.MLDSA44PrivateKey, "ML_DSA_65": mldsa.MLDSA65PrivateKey,
          "ML_DSA_87": mldsa.MLDSA87PrivateKey}


def unb64(text):
    return base64.b64decode(text)


def b64(data):
    return base64.b64encode(data).decode()


def hash_of(algorithm):
    """The hash class of a KMS signing or encryption algorithm name."""
    for suffix, hash_class in HASHES.items():
        if algorithm.endswith(suffix):
            return hash_class
    raise ValueError(f"no hash in {algorithm}")


def public_der(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def generate(spec):
    if spec.startswith("RSA_"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(spec[4:]))
    if spec in CURVES:
        return ec.generate_private_key(CURVES[spec]())
    if spec == "ECC_NIST_EDWARDS25519":
        return ed25519.Ed25519PrivateKey.generate()
    if spec in ML_DSA:
        return ML_DSA[spec].generate()
    raise ValueError(f"cannot generate {spec}")


def sign(key, algorithm, message):
    """Signs the raw message the way KMS defines `algorithm`."""
    if algorithm.startswith("RSASSA_PSS_"):
        hash_class = hash_of(algorithm)
        return key.sign(message, padding.PSS(mgf=padding.MGF1(hash_class()), salt_length=hash_class.digest_size),
                        hash_class())
    if algorithm.startswith("RSASSA_PKCS1_V1_5_"):
        return key.sign(message, padding.PKCS1v15(), hash_of(algorithm)())
    if algorithm.startswith("ECDSA_"):
        return key.sign(message, ec.ECDSA(hash_of(algorithm)()))
    return key.sign(message)  # Ed25519, ML-DSA (empty context)


def verify(public, algorithm, message, message_type, signature):
    """Whether `signature` is valid, treating a DIGEST message as the hash KMS would have computed and an
    EXTERNAL_MU message as ML-DSA's mu."""
    digest = message_type == "DIGEST"
    try:
        if message_type == "EXTERNAL_MU":
            public.verify_mu(signature, message)
        elif algorithm.startswith(("RSASSA_", "ECDSA_")):
            hash_class = hash_of(algorithm)
            chosen = utils.Prehashed(hash_class()) if digest else hash_class()
            if algorithm.startswith("RSASSA_PSS_"):
                public.verify(signature, message,
                              padding.PSS(mgf=padding.MGF1(hash_class()), salt_length=hash_class.digest_size),
                              chosen)
            elif algorithm.startswith("RSASSA_PKCS1_V1_5_"):
                public.verify(signature, message, padding.PKCS1v15(), chosen)
            else:
                public.verify(signature, message, ec.ECDSA(chosen))
        elif digest:
            raise ValueError(f"{algorithm} takes no digest")
        else:
            public.verify(signature, message)
        return True
    except InvalidSignature:
        return False


def signature_format(public, algorithm, signature):
    """How the signature is encoded, for comparing a KMS signature with one made here."""
    if algorithm.startswith("ECDSA_"):
        r, s = utils.decode_dss_signature(signature)
        canonical = utils.encode_dss_signature(r, s) == signature
        return {"encoding": "DER" if canonical else "non-canonical DER"}
    return {"encoding": f"{len(signature)} bytes"}


def check(item):
    op = item["op"]
    if op == "verify":
        public = serialization.load_der_public_key(unb64(item["publicKey"]))
        signature = unb64(item["signature"])
        result = {"valid": verify(public, item["algorithm"], unb64(item["message"]), item["messageType"],
                                  signature)}
        result.update(signature_format(public, item["algorithm"], signature))
        return result
    if op == "signOutside":
        key = generate(item["keySpec"])
        signature = sign(key, item["algorithm"], unb64(item["message"]))
        result = {"publicKey": b64(public_der(key.public_key())), "signature": b64(signature)}
        result.update(signature_format(key.public_key(), item["algorithm"], signature))
        return result
    if op == "mlDsaMu":
        # mu = SHAKE256(SHAKE256(pk, 64) || 0 || 0 || M, 64): FIPS 204 with the empty context KMS uses.
        hasher = mldsa.MLDSAMuHasher(serialization.load_der_public_key(unb64(item["publicKey"])))
        hasher.update(unb64(item["message"]))
        return {"mu": b64(hasher.finalize())}
    if op == "oaepEncrypt":
        public = serialization.load_der_public_key(unb64(item["publicKey"]))
        hash_class = hash_of(item["algorithm"])
        ciphertext = public.encrypt(unb64(item["plaintext"]),
                                    padding.OAEP(mgf=padding.MGF1(hash_class()), algorithm=hash_class(), label=None))
        return {"ciphertext": b64(ciphertext)}
    if op == "ecdh":
        peer = serialization.load_der_public_key(unb64(item["publicKey"]))
        key = ec.generate_private_key(peer.curve)
        return {"publicKey": b64(public_der(key.public_key())), "secret": b64(key.exchange(ec.ECDH(), peer))}
    if op == "dataKeyPair":
        private = serialization.load_der_private_key(unb64(item["privateKey"]), password=None)
        result = {"publicKeyMatches": public_der(private.public_key()) == unb64(item["publicKey"])}
        message = b"a data key pair signs outside KMS"
        if item.get("signingAlgorithm"):
            signature = sign(private, item["signingAlgorithm"], message)
            public = serialization.load_der_public_key(unb64(item["publicKey"]))
            result["signatureVerifies"] = verify(public, item["signingAlgorithm"], message, "RAW", signature)
        if item.get("encryptionAlgorithm"):
            hash_class = hash_of(item["encryptionAlgorithm"])
            oaep = padding.OAEP(mgf=padding.MGF1(hash_class()), algorithm=hash_class(), label=None)
            public = serialization.load_der_public_key(unb64(item["publicKey"]))
            result["decrypts"] = private.decrypt(public.encrypt(message, oaep), oaep) == message
        if item.get("peerPublicKey"):
            peer = serialization.load_der_public_key(unb64(item["peerPublicKey"]))
            result["secret"] = b64(private.exchange(ec.ECDH(), peer))
        return result
    if op == "importKey":
        return import_key(item)
    if op == "oaepDecrypt":
        private = serialization.load_der_private_key(unb64(item["privateKey"]), password=None)
        hash_class = hash_of(item["algorithm"])
        plaintext = private.decrypt(unb64(item["ciphertext"]),
                                    padding.OAEP(mgf=padding.MGF1(hash_class()), algorithm=hash_class(), label=None))
        return {"plaintext": b64(plaintext)}
    raise ValueError(f"unknown check {op}")


def wrap(material, wrapping_public, algorithm):
    """Encrypts key material for ImportKeyMaterial, as AWS documents each wrapping algorithm."""
    hash_class = hash_of(algorithm)
    oaep = padding.OAEP(mgf=padding.MGF1(hash_class()), algorithm=hash_class(), label=None)
    if algorithm.startswith("RSAES_OAEP_"):
        return wrapping_public.encrypt(material, oaep)
    # RSA_AES_KEY_WRAP_*: a fresh 256-bit AES key under RSA-OAEP, then the material under AES-KWP (RFC 5649).
    aes_key = os.urandom(32)
    return wrapping_public.encrypt(aes_key, oaep) + aes_key_wrap_with_padding(aes_key, material)


def import_key(item):
    """Key material made here, wrapped for import, with what the test needs to check its use inside."""
    spec = item["keySpec"]
    message = unb64(item["message"])
    wrapping_public = serialization.load_der_public_key(unb64(item["wrappingPublicKey"]))
    result = {}
    if spec.startswith("HMAC_"):
        material = os.urandom(item["keyLength"])
        mac = hmac.HMAC(material, {"224": hashes.SHA224, "256": hashes.SHA256, "384": hashes.SHA384,
                                   "512": hashes.SHA512}[spec[5:]]())
        mac.update(message)
        result["mac"] = b64(mac.finalize())
    else:
        key = generate(spec)
        material = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        result["publicKey"] = b64(public_der(key.public_key()))
        result["privateKey"] = b64(material)
        if item.get("signingAlgorithm"):
            result["signature"] = b64(sign(key, item["signingAlgorithm"], message))
        if item.get("keyAgreement"):
            peer = ec.generate_private_key(key.curve)
            result["peerPublicKey"] = b64(public_der(peer.public_key()))
            result["secret"] = b64(peer.exchange(ec.ECDH(), key.public_key()))
    result["encryptedKeyMaterial"] = b64(wrap(material, wrapping_public, item["wrappingAlgorithm"]))
    return result


def main():
    request = json.load(sys.stdin)
    results = []
    for item in request["checks"]:
        try:
            results.append(check(item))
        except Exception as error:  # Reported per check, so one bad input does not hide the others.
            results.append({"error": f"{type(error).__name__}: {error}"})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
