#!/bin/sh
# Development certificates for the broker's TLS listener: a CA, a server certificate and
# client certificates (for the mutual-TLS variant in deploy/mosquitto/mosquitto.conf).
#
#   deploy/tls/make-dev-certs.sh [OUT_DIR] [CLIENT ...]
#
# OUT_DIR defaults to deploy/tls/out; the clients default to "site-a site-b ledwatch.collector"
# (a client certificate's CN is its MQTT username: the site id or ledwatch.collector).
# Extra server names: LEDWATCH_TLS_SERVER_NAMES="broker.example.net 10.0.0.5".
# The server certificate always covers localhost, 127.0.0.1, ::1 and "mosquitto" (the
# compose service name). EC P-256 keys, SHA-256, valid 825 days (the longest that
# Apple clients accept for a server certificate).
#
# FOR DEVELOPMENT AND TESTS ONLY: the CA key stays next to the certificates, unencrypted.
# In production use your own PKI, or at least keep ca.key offline.
set -eu

out=${1:-$(dirname "$0")/out}
[ $# -gt 0 ] && shift
clients=${*:-site-a site-b ledwatch.collector}
days=${LEDWATCH_TLS_DAYS:-825}
names=${LEDWATCH_TLS_SERVER_NAMES:-}

mkdir -p "$out"
cd "$out"
umask 077

key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }

# Certificate authority.
if [ ! -f ca.key ]; then
    key ca.key
    openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=LEDwatch dev CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
fi

sign() { # sign NAME SUBJECT EXTFILE
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
        -days "$days" -extfile "$3" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$3"
}

# Server certificate for the broker.
san="DNS:localhost,DNS:mosquitto,IP:127.0.0.1,IP:::1"
for n in $names; do
    case $n in
        *[!0-9.:]*) san="$san,DNS:$n" ;;
        *) san="$san,IP:$n" ;;
    esac
done
key server.key
printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=$san" > server.ext
sign server "/CN=ledwatch-broker" server.ext

# Client certificates: CN = MQTT username (see use_identity_as_username).
for c in $clients; do
    key "client-$c.key"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=clientAuth" > "client-$c.ext"
    sign "client-$c" "/CN=$c" "client-$c.ext"
done

# Certificates are public; keys stay private (0600). The broker in a container reads
# server.key as its own user: see docs/deploy.md.
chmod 644 ca.crt server.crt client-*.crt
echo "certificates written to $(pwd)"
