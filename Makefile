.PHONY: test check snapshots
test:
	bash scripts/test
check:
	bash scripts/check
snapshots:
	.venv/bin/python -m pytest tests/ui --snapshot-update
