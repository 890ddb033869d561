"""Every stage in one command: compress -> convert -> codegen -> build -> bench.

That is `tinyrank deploy`, and `make demo` on the digits data set.
"""
