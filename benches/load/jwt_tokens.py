#!/usr/bin/env python3
"""Keys and bearer tokens for the JWT rows of benches/load/run.sh, minted with PyJWT.

Usage: python3 benches/load/jwt_tokens.py OUT_DIR [N]   (N distinct uncached tokens, default 10000)

Writes to OUT_DIR:
  jwks.json         the RS256 public key (kid b1), for benches/load/configs/jwt.yaml
  cached.lua        a wrk script sending one token on every request: verified once, then
  cached.headers    served from Redline's identity cache (loadgen --header-lines form)
  uncached.lua      a wrk script rotating among N distinct tokens, and the same for loadgen;
  uncached.headers  every one of them is verified on every request (see below)
  uncached.tokens   the N tokens, one a line (read by uncached.lua)

Why the uncached tokens really miss: Redline caches an identity until the token's `exp`, and
never caches a token already past `exp` that is accepted only thanks to `leeway`. jwt.yaml
sets `leeway: 1h`, and the uncached tokens expired one minute before minting: each is valid
for the next 59 minutes and is verified again on every request, whatever the cache's size
(10,000 entries). Mint them again before a run that starts more than 50 minutes later.
The cached token expires in a day.
"""
import json
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

out = os.path.abspath(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
os.makedirs(out, exist_ok=True)
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
jwk.update(kid="b1", alg="RS256", use="sig")
with open(os.path.join(out, "jwks.json"), "w") as f:
    json.dump({"keys": [jwk]}, f)

now = int(time.time())


def token(sub, exp):
    claims = {"sub": sub, "iss": "https://id.bench", "aud": "bench", "iat": now,
              "exp": exp, "roles": ["user"]}
    return jwt.encode(claims, key, "RS256", headers={"kid": "b1"})


def write(name, text):
    with open(os.path.join(out, name), "w") as f:
        f.write(text)


cached = token("cached-user", now + 86400)
write("cached.headers", f"authorization: Bearer {cached}\n")
write("cached.lua", f'wrk.headers["Authorization"] = "Bearer {cached}"\n')

tokens = [token(f"user-{i}", now - 60) for i in range(n)]
write("uncached.tokens", "\n".join(tokens) + "\n")
write("uncached.headers", "".join(f"authorization: Bearer {t}\n" for t in tokens))
write("uncached.lua", f"""-- Rotates among the {n} tokens of uncached.tokens; each thread starts elsewhere.
local tokens = {{}}
for line in io.lines("{out}/uncached.tokens") do tokens[#tokens + 1] = line end
local threads = 0
function setup(thread)
  thread:set("offset", threads * 4999)
  threads = threads + 1
end
function init(args)
  i = offset or 0
end
function request()
  i = i % #tokens + 1
  return wrk.format(nil, nil, {{["Authorization"] = "Bearer " .. tokens[i]}})
end
""")
print(f"{out}: jwks.json, cached.*, uncached.* ({n} tokens)")
