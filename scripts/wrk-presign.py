#!/usr/bin/env python3
"""Writes wrk scripts that replay one signed Encrypt and one signed Decrypt against a development server.

wrk cannot sign requests, but a SigV4 signature stays valid for five minutes and the server checks it
in full on every request, so replaying one signed request measures the same work as signing each one.
The script creates a symmetric key (access key `test`, secret `test`, as `serve --dev` accepts), then
writes `encrypt.lua` and `decrypt.lua` into the output directory. Run wrk within five minutes:

    scripts/wrk-presign.py --endpoint http://127.0.0.1:9555 --out /tmp/wrk
    wrk -t2 -c32 -d4s --latency http://127.0.0.1:9555/__strongroom/noop
    wrk -t2 -c32 -d4s --latency -s /tmp/wrk/encrypt.lua http://127.0.0.1:9555

docs/PERFORMANCE.md compares these figures with `strongroom bench`.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import time
import urllib.request

REGION = "us-east-1"


def signed_headers(host, target, body, access_key, secret):
    """The headers of a SigV4-signed AWS JSON 1.1 request to `TrentService.<target>`."""
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    day = amz_date[:8]
    headers = {
        "content-type": "application/x-amz-json-1.1",
        "host": host,
        "x-amz-date": amz_date,
        "x-amz-target": f"TrentService.{target}",
    }
    names = sorted(headers)
    canonical = "\n".join(
        ["POST", "/", ""]
        + [f"{name}:{headers[name]}" for name in names]
        + ["", ";".join(names), hashlib.sha256(body).hexdigest()]
    )
    scope = f"{day}/{REGION}/kms/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in (day, REGION, "kms", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return headers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="http://127.0.0.1:9444")
    parser.add_argument("--out", default=".", help="directory for encrypt.lua and decrypt.lua")
    parser.add_argument("--access-key-id", default="test")
    parser.add_argument("--secret-access-key", default="test")
    args = parser.parse_args()
    host = args.endpoint.split("//", 1)[1].rstrip("/")

    def request(target, payload):
        body = json.dumps(payload).encode()
        headers = signed_headers(host, target, body, args.access_key_id, args.secret_access_key)
        return body, headers

    def call(target, payload):
        body, headers = request(target, payload)
        sent = urllib.request.Request(args.endpoint.rstrip("/") + "/", data=body, headers=headers)
        with urllib.request.urlopen(sent) as response:
            return json.loads(response.read())

    def write_lua(name, body, headers):
        # wrk sends its own Host header, from the URL it is given.
        lines = ['wrk.method = "POST"', 'wrk.path = "/"', f"wrk.body = {json.dumps(body.decode())}"]
        lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items() if k != "host"]
        path = os.path.join(args.out, f"{name}.lua")
        with open(path, "w") as out:
            out.write("\n".join(lines) + "\n")
        print(f"wrote {path}")

    os.makedirs(args.out, exist_ok=True)
    key_id = call("CreateKey", {})["KeyMetadata"]["KeyId"]
    plaintext = base64.b64encode(os.urandom(512)).decode()
    encrypt = request("Encrypt", {"KeyId": key_id, "Plaintext": plaintext})
    ciphertext = call("Encrypt", {"KeyId": key_id, "Plaintext": plaintext})["CiphertextBlob"]
    write_lua("encrypt", *encrypt)
    write_lua("decrypt", *request("Decrypt", {"CiphertextBlob": ciphertext}))
    print(f"key {key_id}; the signatures expire in five minutes")


if __name__ == "__main__":
    main()
