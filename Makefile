# Common tasks. `make run` sets up and runs the main job; `make test` is the
# test command that CI runs (.ci/run).

CARGO ?= cargo

.PHONY: run test lint bench build

build:
	$(CARGO) build --release

# `cargo run` finds the binary wherever CARGO_TARGET_DIR points.
run:
	$(CARGO) run --release --bin flowrun -- pipelines/training.yaml

test:
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: build
	./scripts/bench.sh
