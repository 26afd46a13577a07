# aigis — `make run` starts the gateway on the embedded default; `make test`
# runs every test under AddressSanitizer + UBSan. Both install what is missing
# first (scripts/bootstrap, quick when nothing is).
JOBS ?= 2
GEN := -G Ninja -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
export CCACHE_SLOPPINESS := pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_MAXSIZE := 5G

.PHONY: all bootstrap build build-asan run test bench bench-proxy bench-identity bench-authz bench-guard bench-audit bench-mcp guard-eval clean

all: build

bootstrap:
	@scripts/bootstrap

# Release build (what `make run` and `make bench` use): build/aigis
build: bootstrap
	@cmake -S . -B build $(GEN) -DCMAKE_BUILD_TYPE=Release -DAIGIS_TESTS=OFF >/dev/null
	@cmake --build build -j$(JOBS)

# Sanitizer build (what `make test` uses): build-asan/
build-asan: bootstrap
	@cmake -S . -B build-asan $(GEN) -DCMAKE_BUILD_TYPE=Debug -DAIGIS_SANITIZE=ON -DAIGIS_BENCH=OFF \
	  -DCMAKE_CXX_FLAGS="-O1 -g" >/dev/null
	@cmake --build build-asan -j$(JOBS)

run: build
	@scripts/run-demo

test: build-asan
	@cd build-asan && ctest --output-on-failure -j$(JOBS) --timeout 900

# Load benchmarks against nginx (bench/results/*.md); one after the other,
# never in parallel (they would measure each other).
bench: build
	@bench/proxy/run.sh
	@bench/identity/run.sh
	@$(AUTHZ_BENCH)

bench-proxy: build
	@bench/proxy/run.sh

# Token issuance and authentication (also runs the identity micro-benchmarks,
# which `make build` builds when Google Benchmark is installed).
bench-identity: build
	@bench/identity/run.sh

# The authz engine on a generated 1M-tuple organisation: Check p50/p99 per
# kind, ListObjects, bytes per tuple, SQLite load (bench/results/authz.md).
# About 2-3 minutes; the report is also written to build/bench-authz.txt.
AUTHZ_BENCH = build/bench/authz/aigis_authz_benchmark --benchmark_min_time=1 \
  --benchmark_out=build/bench-authz.txt --benchmark_out_format=console

bench-authz: build
	@$(AUTHZ_BENCH)

# The guard engine against RE2::Set on a 1 MB corpus, stream mode, and the
# added latency of a 4 KB prompt (bench/results/guard.md).
bench-guard: build
	@build/bench/guard/aigis_guard_benchmark --benchmark_min_time=1 \
	  --benchmark_out=build/bench-guard.txt --benchmark_out_format=console

# The audit log: appends/s (async, sync), proofs at 10M leaves, verify
# speed (bench/results/audit.md). Logs go to build/bench-audit-data (~3 GB;
# the 10M-leaf log is built once, about a minute, and reused).
# MCP tools/call through aigis vs directly to the same upstream
# (bench/results/mcp.md).
bench-mcp: build
	@bench/mcp/run.sh

bench-audit: build
	@cd build && AIGIS_BENCH_DIR=bench-audit-data bench/audit/aigis_audit_benchmark \
	  --benchmark_out=bench-audit.txt --benchmark_out_format=console

# `aigis guard eval` on the external data sets in ../shared/data/guard
# (scripts/guard-datasets.mjs): build/guard-data/report.md, the table in
# docs/guard.md.
guard-eval: build
	@node scripts/guard-datasets.mjs --eval build/aigis --report build/guard-data/report.md

clean:
	rm -rf build build-asan
