PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run streamlit test lint browser clean-venv

venv: $(STAMP)

# Idempotent: rebuilt only when requirements.txt changes.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

run: venv
	$(BIN)/python app.py

streamlit: venv
	$(BIN)/streamlit run demo/streamlit_app.py --server.address 127.0.0.1 --server.headless true

# Debian chromium + chromedriver for the real-browser tests (skipped quietly when apt is unavailable).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  ( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	    || echo "warning: could not install chromium; browser tests will be skipped" )

lint: venv
	$(BIN)/ruff check colorcore training tests app.py hubconf.py demo scripts

test: venv browser
	$(BIN)/ruff check colorcore training tests app.py hubconf.py demo scripts
	$(BIN)/python -m pytest -q --durations=15

clean-venv:
	rm -rf $(VENV)
