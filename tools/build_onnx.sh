#!/usr/bin/env bash
# Builds the ONNX C++ library that ppc and pprun link, from ONNX's pinned source
# distribution on PyPI, against Debian's protobuf, and installs it into a cache
# outside the checkout (reused by every clone on this machine):
#   ${PPC_CACHE:-$HOME/.cache/ppc}/onnx-<version>-<namespace>/
# Prints that prefix on its last line. Idempotent: a finished install is reused.
#
# Why not Debian's libonnx-dev: it is ONNX 1.12 (IR version 8, opset 17), which
# cannot read what torch 2.x's exporter writes (IR version 10, opset 18+, node
# metadata_props). Why a namespace of our own (onnx_ppc): Debian's LibTorch 1.13
# links its libonnx 1.12 and registers onnx/onnx-ml.proto in the same protobuf;
# a second library under the same proto package and C++ namespace aborts at
# start-up. Under onnx_ppc the two never meet (the code says onnx:: through
# schemas/onnx_proto.h).
set -euo pipefail
ONNX_VERSION=1.20.1
ONNX_SHA256=ded16de1df563d51fbc1ad885f2a426f814039d8b5f4feb77febe09c0295ad67
NAMESPACE=onnx_ppc
CMAKE_VERSION=3.31.6
CACHE=${PPC_CACHE:-$HOME/.cache/ppc}
PREFIX=$CACHE/onnx-$ONNX_VERSION-$NAMESPACE
if [[ -f $PREFIX/.complete ]]; then
  echo "$PREFIX"
  exit 0
fi
mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/onnx-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
sdist=$CACHE/onnx-$ONNX_VERSION.tar.gz
if [[ ! -f $sdist ]]; then
  python3 -m pip download --quiet --no-deps --no-binary :all: "onnx==$ONNX_VERSION" -d "$work/dl" >&2
  mv "$work/dl/onnx-$ONNX_VERSION.tar.gz" "$sdist"
fi
echo "$ONNX_SHA256  $sdist" | sha256sum -c --quiet - >&2 || {
  echo "build_onnx: $sdist does not have the pinned sha256 (remove it to download again)" >&2
  exit 1
}
# ONNX >= 1.20 needs CMake >= 3.26; Debian 12 has 3.25: a pinned CMake from PyPI, cached too.
CMAKE=cmake
if ! cmake --version | awk 'NR==1{split($3,v,"."); exit !(v[1]>3 || (v[1]==3 && v[2]>=26))}'; then
  if [[ ! -x $CACHE/cmake-$CMAKE_VERSION/bin/cmake ]]; then
    python3 -m pip install --quiet --target "$CACHE/cmake-$CMAKE_VERSION" "cmake==$CMAKE_VERSION" >&2
  fi
  CMAKE=$CACHE/cmake-$CMAKE_VERSION/bin/cmake
  export PYTHONPATH=$CACHE/cmake-$CMAKE_VERSION${PYTHONPATH:+:$PYTHONPATH}
fi
tar -xzf "$sdist" -C "$work"
echo "build_onnx: building ONNX $ONNX_VERSION (namespace $NAMESPACE) into $PREFIX" >&2
"$CMAKE" -S "$work/onnx-$ONNX_VERSION" -B "$work/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_SHARED_LIBS=OFF \
  -DONNX_NAMESPACE=$NAMESPACE -DONNX_ML=ON -DONNX_USE_PROTOBUF_SHARED_LIBS=ON \
  -DONNX_BUILD_TESTS=OFF -DONNX_BUILD_PYTHON=OFF -DONNX_GEN_PB_TYPE_STUBS=OFF >&2
"$CMAKE" --build "$work/build" -j"$(nproc)" >&2
rm -rf "$PREFIX"
"$CMAKE" --install "$work/build" >&2
touch "$PREFIX/.complete"
echo "$PREFIX"
