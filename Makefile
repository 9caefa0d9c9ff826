# VideoQoS — the two commands are `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := librdkafka-dev libmaxminddb-dev libzstd-dev uap-core pkg-config mmdb-bin python3-ua-parser
PY_PACKAGES := pyarrow duckdb datasketches ddsketch protobuf jsonschema mmdb-writer netaddr maxminddb pytest pyyaml
QOS_DEBUG := .build/debug/qos
QOS_RELEASE := .build/release/qos

.PHONY: deps deps-system deps-python build release test test-swift test-interop demo bench clean

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

release: deps-system
	$(SWIFT) build -c release

## test: everything CI runs — Swift unit/property tests, then interop tests with real readers.
test: deps build test-swift test-interop

test-swift:
	$(SWIFT) test

test-interop: deps-python build
	QOS_BIN=$(abspath $(QOS_DEBUG)) $(PY) -m pytest -q tests/interop

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

bench: deps release
	$(PY) bench/run.py

clean:
	rm -rf .build .demo output/*/
