# raft-kv: the two commands a new user needs are `make run` and `make test`.
# Both install the Debian packages first (scripts/install-deps.sh), so they
# work on a fresh Debian 12 machine.

PRESET ?= release
BUILD  := $(if $(filter release,$(PRESET)),build,build-$(PRESET))
ARGS   ?=
# CI builds with -Werror.
CMAKE_EXTRA := $(if $(CI),-DRKV_WERROR=ON,)

.PHONY: all deps configure build run cluster test test-asan test-tsan bench sim-long sim-planted clean help

all: build

help:
	@echo "make run        build (release) and start raft-kv on 127.0.0.1:8080, data in ./data"
	@echo "make cluster    build and run a local cluster of NODES (default 3) raft-kv nodes until Ctrl-C"
	@echo "make test       build and run every test (unit, crash, integration)"
	@echo "make test-asan  the same under AddressSanitizer + UBSan"
	@echo "make test-tsan  the storage, env and node host tests under ThreadSanitizer (part of make test)"
	@echo "make bench      the engine benchmark beside LMDB, RocksDB and LevelDB"
	@echo "make bench-cluster  a 3-node raft-kv cluster beside a 3-member etcd, measured with raft-kv-bench (installs etcd; ~25 min)"
	@echo "make sim-long   the cluster simulator for SIM_FOR (default 10m), swarm rates unless SWARM=0"
	@echo "make sim-planted  re-plant known Raft bugs and show the seed that catches each"

deps:
	@scripts/install-deps.sh

configure: deps
	@cmake --preset $(PRESET) $(CMAKE_EXTRA) >/dev/null

build: configure
	@cmake --build --preset $(PRESET)

# Builds only the server, then starts it in the foreground (Ctrl-C stops it).
run: configure
	@cmake --build --preset $(PRESET) --target raft-kv
	./$(BUILD)/bin/raft-kv $(ARGS)

# NODES raft-kv processes on 127.0.0.1 (HTTP on 7001.., data in
# ./local-cluster), restarted from their data on the next run; Ctrl-C stops
# them all.
NODES ?= 3
cluster: configure
	@cmake --build --preset $(PRESET) --target raft-kv raft-kv-cli
	./$(BUILD)/bin/raft-kv-cli local-cluster --nodes $(NODES)

# Every test of the build, then the storage, env and node host tests again
# under ThreadSanitizer (they run readers, writers, group commit and merge at
# once; client threads, the node loop and the transport).
test: build
	ctest --preset $(PRESET)
	$(MAKE) --no-print-directory test-tsan

test-asan:
	$(MAKE) PRESET=asan build
	ctest --preset asan

test-tsan: deps
	@cmake --preset tsan $(CMAKE_EXTRA) >/dev/null
	@cmake --build --preset tsan --target storage_tests env_tests node_host_tests
	./build-tsan/bin/storage_tests --gtest_brief=1
	./build-tsan/bin/env_tests --gtest_brief=1
	./build-tsan/bin/node_host_tests --gtest_brief=1

bench: build
	./build/bin/raft-kv-engine-bench

# 3 raft-kv nodes beside 3 etcd members on 127.0.0.1, measured alike with
# raft-kv-bench: writes, linearizable reads and a 50/50 mix at 1, 16, 64 and
# 256 connections, each point 3 times, medians in a table
# (bench/cluster/run.sh; installs Debian's etcd when missing).
# BENCH_SECS per run: make bench-cluster BENCH_SECS=30
BENCH_SECS ?= 10
.PHONY: bench-cluster
bench-cluster: deps
	@cmake --preset release $(CMAKE_EXTRA) >/dev/null
	@cmake --build --preset release --target raft-kv raft-kv-bench
	RAFT_KV=./build/bin/raft-kv RAFT_KV_BENCH=./build/bin/raft-kv-bench bench/cluster/run.sh $(BENCH_SECS)

# A simulator sweep for as long as asked, from a seed taken from the clock
# (printed, so a failure replays): make sim-long SIM_FOR=2h SIM_JOBS=8
SIM_FOR  ?= 10m
SIM_FROM ?= $(shell date +%s)
SIM_JOBS ?= $(shell nproc)
SWARM    ?= 1
sim-long: configure
	@cmake --build --preset $(PRESET) --target raft-kv-sim
	./$(BUILD)/bin/raft-kv-sim --seeds $(SIM_FROM).. --for $(SIM_FOR) --jobs $(SIM_JOBS) \
	  $(if $(filter 1,$(SWARM)),--swarm,) --keep-going

sim-planted: deps
	tests/sim/planted/run.sh

clean:
	rm -rf build build-debug build-asan build-tsan
