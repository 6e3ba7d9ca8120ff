# `make bench`: the controller measured against a local control plane (test/bench).
# Included by the Makefile; paths are relative to the repository root.

# BENCH_FLAGS: -n 100,1000,10000 or -large for N = 10000; -set KEY=VALUE to
# change a controller setting (reported as changed); -keep keeps the logs.
BENCH_FLAGS ?=

# Built, then run, rather than `go run`, so that Ctrl-C reaches the bench,
# which stops everything it started. The JSON goes to bin/ (not committed).
bench: ## Measure install, refresh, new namespaces, failover, memory against the server's own limit (not part of test)
	@go build -o bin/bench ./test/bench
	@bin/bench -json bin/bench-results.json $(BENCH_FLAGS)
