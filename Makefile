# Everything a person does with tlsnic is a make target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
FIXTURE ?= fixtures/captures/tls12-aes128-v4

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

dist/tlsnic.mjs: node_modules/.installed $(shell find cli emulator driver-api testbed -name '*.ts' 2>/dev/null) index.ts scripts/build.mjs scripts/bundles.mjs tsconfig.lib.json
	node scripts/build.mjs

.PHONY: help install build demo test typecheck bench fuzz soak fixtures clean

help:
	@echo "make demo       install, build, replay a bundled capture through the emulated NIC, print counters"
	@echo "make test       type-check and run the test suite (ends with 'N passed, N failed')"
	@echo "make bench      benchmarks (ratios against raw node:crypto measured in the same run)"
	@echo "make fuzz       seeded fuzz run of every input class (FUZZ_COUNT=1000000 inputs each by default)"
	@echo "make soak       randomized soaks: resync recovery distances, then loss/reorder/duplication + link flaps + driver faults"
	@echo "                (FLOWS=2000 flows per resync type; SOAK_SECONDS=60 runs the fault soak for a wall time instead; SOAK_SEED=n replays)"
	@echo "make fixtures   regenerate the TLS capture fixtures (root: network namespaces + tcpdump)"

install: node_modules/.installed

build: dist/tlsnic.mjs

demo: dist/tlsnic.mjs
	node dist/tlsnic.mjs replay $(FIXTURE).pcap --keylog $(FIXTURE).keylog

typecheck: node_modules/.installed
	npx tsc -p tsconfig.json

test: node_modules/.installed
	@set -o pipefail; npx tsc -p tsconfig.json && echo "typecheck: ok" || { echo "typecheck failed"; echo "0 passed, 1 failed"; exit 1; }
	@{ npx ava --tap 2>&1; echo "# ava-exit $$?"; } | node scripts/test-summary.mjs

# Each scenario in its own process, one table. BENCH_ARGS: --json, --only raw,device,replay,tshark,table,workers,many,
# --records N | --seconds S, --record-size B, --mss M, --mib N (generated capture, cached in $$TMPDIR/tlsnic-bench).
BENCH_ARGS ?=
bench: node_modules/.installed dist/tlsnic.mjs
	node --import=tsx bench/run.ts $(BENCH_ARGS)

FLOWS ?= 2000
SOAK_SECONDS ?=
SOAK_SEED ?=
soak: dist/tlsnic.mjs
	@if [ -n "$(SOAK_SECONDS)" ]; then \
	  node dist/tlsnic.mjs run fixtures/scenarios/soak-faults.json --seconds $(SOAK_SECONDS) $(if $(SOAK_SEED),--seed $(SOAK_SEED)); \
	else \
	  node dist/tlsnic.mjs run fixtures/scenarios/soak.json --flows $(FLOWS) $(if $(SOAK_SEED),--seed $(SOAK_SEED)) && \
	  node dist/tlsnic.mjs run fixtures/scenarios/soak-faults.json --flows $(FLOWS) $(if $(SOAK_SEED),--seed $(SOAK_SEED)); \
	fi

FUZZ_COUNT ?= 1000000
FUZZ_ARGS ?=
fuzz: node_modules/.installed
	node --import=tsx fuzz/run.ts --count $(FUZZ_COUNT) $(FUZZ_ARGS)

fixtures:
	bash fixtures/make-fixtures.sh

clean:
	rm -rf dist
