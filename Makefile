# towersearch: `make demo` builds the demo store, trains, evaluates and serves it; `make test` runs the tests.
# The loop, with `make demo` serving: `make replay` sends the demo's shoppers to the service, `make refresh` retrains
# on their events and switches to the new index only if it is not worse (reloading the service when
# TOWERSEARCH_ADMIN_TOKEN is set, as it must be for the server too).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo
STAMP := $(VENV)/.installed

.PHONY: install demo replay refresh test test-all lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU PyTorch first, from its pinned local build, so nothing pulls a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,scale]'
	touch $(STAMP)

install: $(STAMP)

DEMO_STEPS ?= 300
HOST ?= 127.0.0.1
PORT ?= 8000

demo: $(STAMP)
	$(BIN)/towersearch demo-data $(DEMO)/data
	$(BIN)/towersearch validate --catalog $(DEMO)/data/catalog.csv --log $(DEMO)/data/log.csv \
		--judgements $(DEMO)/data/judgements.csv
	$(BIN)/towersearch train --catalog $(DEMO)/data/catalog.csv --log $(DEMO)/data/log.csv \
		--judgements $(DEMO)/data/judgements.csv --out $(DEMO)/model --max-steps $(DEMO_STEPS)
	$(BIN)/towersearch evaluate --catalog $(DEMO)/data/catalog.csv --judgements $(DEMO)/data/judgements.csv \
		--retriever all --out $(DEMO)/eval-untrained
	$(BIN)/towersearch reviews train $(DEMO)/data/reviews.csv --out $(DEMO)/review-model
	$(BIN)/towersearch reviews classify $(DEMO)/data/reviews.csv --model $(DEMO)/review-model \
		--out $(DEMO)/review-intents.csv
	$(BIN)/towersearch index --catalog $(DEMO)/data/catalog.csv --log $(DEMO)/data/log.csv \
		--model $(DEMO)/model --reviews $(DEMO)/data/reviews.csv --review-intents $(DEMO)/review-intents.csv \
		--out $(DEMO)/index
	$(BIN)/towersearch evaluate --index $(DEMO)/index --judgements $(DEMO)/data/judgements.csv \
		--retriever all --out $(DEMO)/eval-trained
	$(BIN)/towersearch serve $(DEMO)/index --host $(HOST) --port $(PORT)

REPLAY_SEARCHES ?= 500
REPLAY_RATE ?= 20
REPLAY_SEED ?= 0
REFRESH_STEPS ?= $(DEMO_STEPS)

replay: $(STAMP)
	$(BIN)/python -m towersearch.data.demo.replay --url http://$(HOST):$(PORT) --searches $(REPLAY_SEARCHES) \
		--rate $(REPLAY_RATE) --seed $(REPLAY_SEED)

refresh: $(STAMP)
	$(BIN)/towersearch refresh $(DEMO)/index --events $(DEMO)/index/events.db --log $(DEMO)/data/log.csv \
		--max-steps $(REFRESH_STEPS) $(if $(TOWERSEARCH_ADMIN_TOKEN),--reload http://$(HOST):$(PORT))

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ''

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
