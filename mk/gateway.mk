# mk/gateway.mk — `fcgikit gateway` (src/gateway/): extra inputs its fuzz targets need.
FUZZ_EXTRA_fuzz_gwconf := src/gateway/config.c
