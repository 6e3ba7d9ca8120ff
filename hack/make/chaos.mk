# `make chaos`: the seeded fault-injection soak (test/chaos, docs/reliability.md).
# Included by the Makefile; paths are relative to the repository root.

# CHAOS_DURATION: how long faults are injected (setup and settling come on top).
# CHAOS_SEED: replay a run (its seed is printed first); empty draws one.
# CHAOS_FLAGS: more flags of bin/chaos (-interval, -namespaces, -v, -workdir ...).
CHAOS_DURATION ?= 5m
CHAOS_SEED ?=
CHAOS_FLAGS ?=

# Built, then run, so that Ctrl-C reaches the harness, which stops
# everything it started. The report goes to stdout and bin/chaos-report.json.
chaos: controlplane ## Fault-injection soak: 3 replicas, kills, partitions, restarts, ECR faults; nonzero on any violation (not part of test)
	@go build -o bin/chaos ./test/chaos
	@bin/chaos -duration $(CHAOS_DURATION) $(if $(CHAOS_SEED),-seed $(CHAOS_SEED)) -json bin/chaos-report.json $(CHAOS_FLAGS)
