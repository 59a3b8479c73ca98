# NeuroHub MES — one command to run, one to test. Everything installs into ./.venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
PLUGINS := plugins/label_printer plugins/firmware_uploader plugins/barcode_hid plugins/dashboard_kpi plugins/opcua plugins/modbus plugins/mqtt
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-fast lint bench clean ui-translations

setup: $(STAMP)

$(STAMP): pyproject.toml $(foreach p,$(PLUGINS),$(p)/pyproject.toml) station/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(foreach p,$(PLUGINS),-e '$(p)[server]') -e '.[server,test]' -e './station[ui,test]'
	@if [ -f web/package.json ]; then scripts/build-web.sh; fi
	@scripts/install-fonts.sh
	touch $(STAMP)

## Start the server on the embedded default (SQLite, no Redis) with simulated devices.
run: setup
	$(BIN)/mes serve --demo --host $(HOST) --port $(PORT)

## The whole suite: SQLite always; PostgreSQL + Redis when they answer on 127.0.0.1.
test: setup
	scripts/test.sh

lint: setup
	$(BIN)/ruff check mes_kernel plugins station tests bench

bench: setup
	$(BIN)/python bench/bench_records.py

## The station window's catalogues: refresh the Korean .ts from the code (new strings come in
## unfinished; translate them in the .ts or Qt Linguist), then compile the .qm that ships.
UI_DIR := station/mes_station/ui
ui-translations: setup
	cd $(UI_DIR) && ../../../$(BIN)/pyside6-lupdate -no-obsolete -locations none *.py -ts i18n/mes_station_ui_ko.ts
	$(BIN)/pyside6-lrelease $(UI_DIR)/i18n/mes_station_ui_ko.ts -qm $(UI_DIR)/i18n/mes_station_ui_ko.qm

clean:
	rm -rf $(VENV) var .pytest_cache
