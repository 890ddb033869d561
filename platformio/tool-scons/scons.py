"""Entry point PlatformIO runs as `tool-scons/scons.py`.

PlatformIO normally downloads its own copy of SCons from the registry before any build;
this local package (marked as owned by `platformio` in `.piopm`, which is what makes
PlatformIO accept it offline) runs the SCons already installed from PyPI instead.
"""

import sys

import SCons.Script

if __name__ == "__main__":
    sys.exit(SCons.Script.main())
