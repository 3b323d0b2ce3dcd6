# mk/pm.mk — `fcgikit pm` (src/pm/): extra inputs its fuzz targets need.
FUZZ_EXTRA_fuzz_pmconf := src/pm/config.c
