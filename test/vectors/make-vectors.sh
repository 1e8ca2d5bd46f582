#!/bin/sh
# Remakes test/vectors/vectors.json with the Erlang/OTP on the PATH: compiles etf_vectors.erl into a
# temporary directory and runs etf_vectors:main/1 on a distributed node (so pids, ports and
# references carry a real node name and creation). The file records which OTP release made it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="${1:-$here/vectors.json}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
erlc -o "$tmp" "$here/etf_vectors.erl"
ERL_EPMD_ADDRESS=127.0.0.1 erl -noshell -pa "$tmp" \
  -name "etf_vectors@127.0.0.1" -setcookie "etf_vectors_$$" \
  -kernel inet_dist_use_interface '{127,0,0,1}' \
  -eval "etf_vectors:main([\"$out\"])"
