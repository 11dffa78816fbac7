#!/usr/bin/env bash
# Builds the ps-lite baseline of `bench ps` (bench/pslite/ps-bench.cc) into bench/pslite/build/
# (git-ignored): ps-lite's own sources, compiled here against Debian's ZeroMQ and protobuf, plus
# our program. ps-lite's source is never committed: it comes from PSLITE_SRC (a source tree) or
# PSLITE_GIT (a git directory, e.g. the fetch tool's mirror of github:dmlc/ps-lite), default
# /work/.mirror/dmlc+ps-lite/repo. Needs: g++, protoc, libzmq3-dev, libprotobuf-dev
# (apt-get install -y g++ protobuf-compiler libzmq3-dev libprotobuf-dev).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/build"
missing=()
command -v g++ >/dev/null || missing+=("g++ (apt-get install -y g++)")
command -v protoc >/dev/null || missing+=("protoc (apt-get install -y protobuf-compiler)")
[ -f /usr/include/zmq.h ] || missing+=("ZeroMQ headers /usr/include/zmq.h (apt-get install -y libzmq3-dev)")
[ -d /usr/include/google/protobuf ] || missing+=("protobuf headers /usr/include/google/protobuf (apt-get install -y libprotobuf-dev)")
src="${PSLITE_SRC:-}"
if [ -z "$src" ]; then
  gitdir="${PSLITE_GIT:-/work/.mirror/dmlc+ps-lite/repo}"
  if git --git-dir="$gitdir" rev-parse --verify -q HEAD >/dev/null 2>&1; then
    src="$out/ps-lite"
    rm -rf "$src" && mkdir -p "$src"
    git --git-dir="$gitdir" archive HEAD > "$out/ps-lite.tar"
    tar -xf "$out/ps-lite.tar" -C "$src" && rm "$out/ps-lite.tar"
  else
    missing+=("ps-lite source: set PSLITE_SRC to a checkout of github.com/dmlc/ps-lite, or PSLITE_GIT to its git directory (not found: $gitdir)")
  fi
elif [ ! -f "$src/include/ps/ps.h" ]; then
  missing+=("ps-lite source: PSLITE_SRC=$src has no include/ps/ps.h")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench/pslite/build.sh: cannot build, missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
mkdir -p "$out/gen"
protoc --proto_path="$src/src" --cpp_out="$out/gen" "$src/src/meta.proto"
# -fno-math-errno lets g++ vectorize the AdaGrad sqrt: its push 4.9 -> 3.0 ms a round (4096 rows,
# one run, load 1.4): the baseline as fast as a plain build of it gets.
flags=(-O3 -fno-math-errno -std=c++14 -DNDEBUG -I"$src/include" -I"$src/src" -I"$out/gen" -pthread)
objs=()
for f in "$src"/src/*.cc "$out/gen/meta.pb.cc" "$here/ps-bench.cc"; do
  o="$out/$(basename "$f" .cc).o"
  echo "[pslite build] $f"
  g++ "${flags[@]}" -c "$f" -o "$o"
  objs+=("$o")
done
g++ -pthread -o "$out/ps-bench" "${objs[@]}" -lzmq -lprotobuf
echo "[pslite build] built $out/ps-bench from $src"
