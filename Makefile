# VideoQoS — the two commands are `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := librdkafka-dev libmaxminddb-dev libzstd-dev zlib1g-dev libmimalloc-dev uap-core pkg-config mmdb-bin python3-ua-parser chromium
PY_PACKAGES := pyarrow duckdb datasketches ddsketch protobuf jsonschema mmdb-writer netaddr maxminddb pytest pytest-xdist pyyaml 'moto[server]'
# make bench only (peer engines; never make test / CI): Spark needs a Java 17+ runtime.
PY_BENCH_PACKAGES := pyspark
BENCH_APT_JAVA := openjdk-17-jre-headless
QOS_DEBUG := .build/debug/qos
QOS_RELEASE := .build/release/qos

.PHONY: deps deps-system deps-python deps-bench build release test test-swift test-interop demo bench soak fuzz clean

## deps: install the system libraries (apt-get, as root) and the Python test oracles (.venv). Idempotent.
deps: deps-system deps-python

deps-system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.stamp: Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(PY_PACKAGES)
	@touch $@

deps-python: $(VENV)/.stamp

build: deps-system
	$(SWIFT) build

# The Swift runtime linked in, as the Docker image builds it: the binary runs
# without a Swift toolchain, and starts and calls the runtime without the
# dynamic linker's indirection (bench/results/speed.md section 63).
release: deps-system
	$(SWIFT) build -c release --static-swift-stdlib

## test: everything CI runs — Swift unit/property tests, then interop tests with real readers.
test: deps build test-swift test-interop

test-swift:
	$(SWIFT) test

# The interop tests mostly wait on daemons, brokers and moto, so they run in
# INTEROP_WORKERS pytest processes (pytest-xdist; each has its own session
# fixtures); work stealing keeps the long crash tests from ending last.
# Tests marked `serial` (real time, sensitive to load) run afterwards, alone.
INTEROP_WORKERS ?= 4
test-interop: deps-python build
	QOS_BIN=$(abspath $(QOS_DEBUG)) $(PY) -m pytest -q -n $(INTEROP_WORKERS) --dist worksteal -m "not serial" tests/interop
	QOS_BIN=$(abspath $(QOS_DEBUG)) $(PY) -m pytest -q -m serial tests/interop

## demo: the main job on the embedded defaults: broker + generator + daemon (qos demo), then a look with DuckDB.
DEMO_DIR := output
DEMO_SECONDS ?= 60
demo: deps release
	@mkdir -p .demo
	@$(QOS_RELEASE) generate --geo-table > .demo/geo.csv
	@$(PY) tools/build_mmdb.py .demo/geo.csv --city .demo/city.mmdb --asn .demo/asn.mmdb
	$(QOS_RELEASE) demo --sink $(DEMO_DIR) --duration $(DEMO_SECONDS) --geoip-db .demo/city.mmdb --geoip-db .demo/asn.mmdb
	@$(QOS_RELEASE) inspect $(DEMO_DIR)/overall
	@$(PY) tools/demo_query.py $(DEMO_DIR)

## fuzz: libFuzzer over decoder + engine + Parquet encoding (Sources/QoSFuzz) for FUZZ_MINUTES (default 5),
## seeded from qos generate and tests/fuzz/hostile.ndjson; a finding is written to .build-fuzz/crashes/.
FUZZ_MINUTES ?= 5
FUZZ_DIR := .build-fuzz
fuzz: build
	$(SWIFT) build -c debug --build-path $(FUZZ_DIR) -Xswiftc -sanitize=fuzzer -Xswiftc -DQOS_FUZZ --product qos-fuzz
	@rm -rf $(FUZZ_DIR)/seed && mkdir -p $(FUZZ_DIR)/seed $(FUZZ_DIR)/corpus $(FUZZ_DIR)/crashes
	@$(QOS_DEBUG) generate --seed 7 --sessions 30 --duplicate-fraction 0.02 --late-fraction 0.02 \
	  --malformed-fraction 0.02 --out $(FUZZ_DIR)/seed/generated.ndjson 2>/dev/null
	@cd $(FUZZ_DIR)/seed && split -l 40 generated.ndjson gen- && rm generated.ndjson \
	  && split -l 1 $(abspath tests/fuzz/hostile.ndjson) hostile- && cp $(abspath tests/fuzz/hostile.ndjson) hostile-all
	$(FUZZ_DIR)/debug/qos-fuzz -max_total_time=$$(( $(FUZZ_MINUTES) * 60 )) -max_len=16384 -timeout=60 \
	  -artifact_prefix=$(FUZZ_DIR)/crashes/ $(FUZZ_DIR)/corpus $(FUZZ_DIR)/seed

## bench: qos replay / daemon / micro-benchmarks and the same job in DuckDB and Spark, checked for agreement; qos replay memory at 500 000 concurrent sessions; qos collect with wrk.
bench: deps deps-bench release
	$(PY) bench/run.py
	$(PY) bench/memory_bench.py
	$(PY) bench/s3_sink.py
	$(PY) bench/collect_bench.py
	$(PY) bench/soak.py

## soak: 10 min (SOAK_SECONDS) of real-time traffic at 20 000 beacons/s with 5 % malformed and 2 % future beacons; RSS, checkpoint size and fds must stay flat (bench/results/soak.md).
soak: deps release
	$(PY) bench/soak.py

## deps-bench: the peer engines for make bench (pyspark into .venv; a Java 17+ runtime via apt if missing). Idempotent.
deps-bench: $(VENV)/.stamp-bench

$(VENV)/.stamp-bench: $(VENV)/.stamp
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	  echo "installing: $(BENCH_APT_JAVA)"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BENCH_APT_JAVA) >/dev/null; \
	fi
	@command -v wrk >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }
	$(PY) -m pip install -q --disable-pip-version-check $(PY_BENCH_PACKAGES)
	@touch $@

clean:
	rm -rf .build .demo output/*/
