"""SCons script PlatformIO runs for `platform = tinyrank-qemu` environments.

Everything a build needs is on the machine already: the Debian cross compiler in
/usr/bin and qemu-system-arm. The board manifest (the project's `boards/<id>.json`,
written by `tinyrank build`) carries the compiler flags, the QEMU machine and the
linker script; `pio run -t upload` runs the firmware in QEMU instead of flashing it,
and the firmware's semihosting exit status becomes pio's exit status.
"""

import os
import shlex

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment  # noqa: F401 (SCons API)

env = DefaultEnvironment()
board = env.BoardConfig()

TOOLCHAIN_PREFIX = os.environ.get("TINYRANK_ARM_PREFIX", "/usr/bin/arm-none-eabi-")
QEMU = os.environ.get("TINYRANK_QEMU", "qemu-system-arm")

env.Replace(
    AR=TOOLCHAIN_PREFIX + "ar",
    AS=TOOLCHAIN_PREFIX + "gcc",
    CC=TOOLCHAIN_PREFIX + "gcc",
    CXX=TOOLCHAIN_PREFIX + "g++",
    GDB=TOOLCHAIN_PREFIX + "gdb",
    OBJCOPY=TOOLCHAIN_PREFIX + "objcopy",
    RANLIB=TOOLCHAIN_PREFIX + "ranlib",
    SIZETOOL=TOOLCHAIN_PREFIX + "size",
    ARFLAGS=["rc"],
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
    SIZEPROGREGEXP=r"^(?:\.isr_vector|\.text|\.data|\.rodata|\.ARM\.exidx)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.data|\.bss)\s+(\d+).*",
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
)

cpu_flags = board.get("build.cpu_flags").split()
env.Append(
    ASFLAGS=cpu_flags + ["-x", "assembler-with-cpp"],
    CCFLAGS=cpu_flags + ["-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra"],
    CFLAGS=["-std=c11"],
    LINKFLAGS=cpu_flags
    + [
        "-nostartfiles",
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-Wl,--gc-sections",
        "-Wl,-Map,${BUILD_DIR}/firmware.map",
    ],
    LIBS=["m"],
)
env.Replace(LDSCRIPT_PATH=os.path.join(env.subst("$PROJECT_DIR"), board.get("build.ldscript")))

elf = env.BuildProgram()

# `pio run -t upload`: run the firmware in QEMU with the UART on this terminal.
qemu_command = [
    QEMU,
    "-M", board.get("build.qemu_machine"),
    # a machine with its CPU built in (the microbit) refuses -cpu
    *(["-cpu", board.get("build.qemu_cpu")] if board.get("build.qemu_cpu", "") else []),
    "-display", "none",
    "-monitor", "none",
    "-icount", "shift=0,align=off,sleep=off",
    "-semihosting-config", "enable=on,target=native",
    "-serial", "stdio",
    "-kernel",
]
env.Replace(UPLOADCMD=" ".join(shlex.quote(part) for part in qemu_command) + " ${SOURCE.abspath}")
upload = env.Alias("upload", elf, env.VerboseAction("$UPLOADCMD", "Running $SOURCE in QEMU"))
AlwaysBuild(upload)

Default([elf])
