#!/usr/bin/env bash
# Test-signs agentsh.sys with a throwaway certificate and verifies the signature.
# usage: sign.sh <unsigned.sys> <signed.sys> [workdir]
# The certificate is made fresh each run (never a secret, never reused); a test-signing host must
# trust it: see docs/driver.md ("Test signing").
set -euo pipefail
in=${1:?usage: sign.sh <unsigned.sys> <signed.sys> [workdir]}
out=${2:?usage: sign.sh <unsigned.sys> <signed.sys> [workdir]}
work=${3:-$(mktemp -d)}
mkdir -p "$work"
cat > "$work/cert.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = ext
[dn]
CN = agentsh test signing (not for production)
O = agentsh
[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
CNF
openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 30 \
  -config "$work/cert.cnf" -keyout "$work/test.key" -out "$work/test.crt" 2>/dev/null
rm -f "$out"
osslsigncode sign -certs "$work/test.crt" -key "$work/test.key" -h sha256 \
  -n "agentsh registry and file filter" -in "$in" -out "$out" >/dev/null
osslsigncode verify -CAfile "$work/test.crt" -in "$out" | tee "$work/verify.txt" | grep -E "Signature verification: ok|Message digest" 
grep -q "Signature verification: ok" "$work/verify.txt" || { echo "sign.sh: signature of \`$out\` did not verify" >&2; exit 1; }
echo "sign.sh: $out signed with a throwaway test certificate ($work/test.crt) and verified"
