# `make demo`: the controller end to end on this machine (hack/demo). Included
# by the Makefile; paths are relative to the repository root.

# DEMO_FLAGS: -keep leaves the working dir (logs, kubeconfig) after exit;
# -exit-after-ready stops once the summary is printed.
DEMO_FLAGS ?=

# Built, then run, rather than `go run`: go run exits 1 after any Ctrl-C, so
# make would report every normal end of the demo as a failure.
demo: ## Two replicas, a local control plane and ECR endpoint, narrated until Ctrl-C (first run builds the control plane: ~15 min)
	@go build -o bin/demo ./hack/demo
	@bin/demo $(DEMO_FLAGS)
