"""Every stage in one command: compress -> convert -> codegen -> build -> bench (`tinyrank deploy`, `make demo`)."""
