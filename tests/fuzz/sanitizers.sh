# Sanitizer settings shared by tools/fuzz.sh and the sanitizer soak (sourced).
# Undefined behaviour stops the process (libFuzzer then keeps the input), with
# a stack; leaks are reported (suppressions in tests/fuzz/lsan.supp, each with
# its reason).
_ppc_fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$_ppc_fuzz_dir/lsan.supp:print_suppressions=0}
