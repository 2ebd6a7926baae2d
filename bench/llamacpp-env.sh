# shellcheck shell=bash
# llama.cpp for the benchmarks and the K-quant fixture (Tests/Fixtures/kquant-model/make.py), built for this machine
# (GGML_NATIVE) from the llama.cpp that the llama-cpp-python 0.3.36 sdist vendors (commit 0c1e57098), plus that
# sdist's `llama_cpp` Python package used straight from the source tree (no second from-source build).
#
#     source bench/llamacpp-env.sh      # sets PATH, PYTHONPATH, LLAMA_CPP_LIB_PATH; says how to build if missing
#     build_llamacpp                    # download + build (10-20 min on 2 cores); needs cmake, g++, pip
#
# Layout (each overridable before sourcing):
#   LLAMA_CPP_SRC_ROOT  /opt/llsrc                              the sdist and its extracted tree
#   LLAMA_CPP_BUILD     /opt/llama.cpp-build                    cmake build; libs + llama-bench, llama-batched-bench,
#                                                               llama-quantize in bin/
#   LLAMA_CPP_PY_VERSION 0.3.36
# After sourcing: `python3 -c "import llama_cpp; print(llama_cpp.llama_cpp.llama_print_system_info())"`.

: "${LLAMA_CPP_SRC_ROOT:=/opt/llsrc}"
: "${LLAMA_CPP_BUILD:=/opt/llama.cpp-build}"
: "${LLAMA_CPP_PY_VERSION:=0.3.36}"
LLAMA_CPP_SDIST="$LLAMA_CPP_SRC_ROOT/llama_cpp_python-$LLAMA_CPP_PY_VERSION"
export LLAMA_CPP_SRC_ROOT LLAMA_CPP_BUILD LLAMA_CPP_PY_VERSION LLAMA_CPP_SDIST

build_llamacpp() {
    (
        set -euo pipefail
        command -v cmake >/dev/null || { echo "cmake missing: apt-get install -y cmake" >&2; exit 1; }
        mkdir -p "$LLAMA_CPP_SRC_ROOT"
        if [ ! -d "$LLAMA_CPP_SDIST/vendor/llama.cpp" ]; then
            # the sdist only (--no-binary for this package alone: with :all: pip would also build cmake and ninja
            # from source just to read the metadata)
            python3 -m pip download --no-deps --no-binary llama-cpp-python \
                "llama-cpp-python==$LLAMA_CPP_PY_VERSION" -d "$LLAMA_CPP_SRC_ROOT"
            tar xzf "$LLAMA_CPP_SRC_ROOT/llama_cpp_python-$LLAMA_CPP_PY_VERSION.tar.gz" -C "$LLAMA_CPP_SRC_ROOT"
        fi
        # runtime deps of the llama_cpp package, and what the fixture / proxy scripts use
        python3 -m pip install --quiet numpy typing-extensions diskcache jinja2 gguf
        # no network at configure or build time: no curl/openssl, no server (its web UI is fetched), no tests
        cmake -S "$LLAMA_CPP_SDIST/vendor/llama.cpp" -B "$LLAMA_CPP_BUILD" \
            -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=ON \
            -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
            -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
        cmake --build "$LLAMA_CPP_BUILD" --config Release -j"${LLAMA_CPP_JOBS:-2}" \
            --target llama-bench llama-batched-bench llama-quantize llama
        ls "$LLAMA_CPP_BUILD"/bin/libllama.so "$LLAMA_CPP_BUILD"/bin/llama-bench "$LLAMA_CPP_BUILD"/bin/llama-quantize
    )
}

# llama_cpp/llama_cpp.py loads libllama.so from $LLAMA_CPP_LIB_PATH (libggml*.so are found through its RUNPATH)
export LLAMA_CPP_LIB_PATH="$LLAMA_CPP_BUILD/bin"
case ":${PYTHONPATH:-}:" in *":$LLAMA_CPP_SDIST:"*) ;; *) export PYTHONPATH="$LLAMA_CPP_SDIST${PYTHONPATH:+:$PYTHONPATH}" ;; esac
case ":$PATH:" in *":$LLAMA_CPP_BUILD/bin:"*) ;; *) export PATH="$LLAMA_CPP_BUILD/bin:$PATH" ;; esac

if [ ! -e "$LLAMA_CPP_BUILD/bin/libllama.so" ] || [ ! -x "$LLAMA_CPP_BUILD/bin/llama-quantize" ] \
    || [ ! -d "$LLAMA_CPP_SDIST/llama_cpp" ]; then
    echo "llamacpp-env.sh: llama.cpp is not built at $LLAMA_CPP_BUILD (or the sdist is missing at $LLAMA_CPP_SDIST)." >&2
    echo "  run: build_llamacpp   (pip download llama-cpp-python==$LLAMA_CPP_PY_VERSION sdist, cmake Release" >&2
    echo "       GGML_NATIVE=ON BUILD_SHARED_LIBS=ON LLAMA_CURL=OFF, targets llama-bench llama-batched-bench llama-quantize llama)" >&2
fi
