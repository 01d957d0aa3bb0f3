#!/usr/bin/env bash
# Boots hyperlaunch on QEMU: builds the image, makes the host device tree (QEMU's own, plus
# an LCM when one is given) and starts the machine, directly (-kernel) or through U-Boot.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/run.sh [options] [LCM.dts]
  LCM.dts            a Launch Control Module (see dts/) merged into the host DTB; without
                     one (and without --dtb or --bare), the demo: dts/demo.dts, three
                     Debian Linux domains (kernel at 0x50000000, initramfs at 0x53000000)
  --bare             boot with the machine's own DTB and no LCM
  --machine M        virt (default), zcu102 (QEMU xlnx-zcu102 with Debian's
                     zynqmp-zcu102-rev1.0.dtb as it is: GIC-400 with 64 KiB-aliased pages,
                     Cadence UART) or raspi4b (QEMU 10's Raspberry Pi 4 with Debian's board
                     DTB as it is: GIC-400, spin-table CPUs, no PSCI, mini UART console; QEMU
                     10 is fetched by scripts/install-qemu10.sh)
  --console C        raspi4b: mini (the board DTB's stdout, default) or pl011; on raspi4b
                     (960 MiB of RAM from 0) module addresses in 0x40000000-0x5fffffff,
                     the LCMs' and --module's, are moved down by 0x30000000
  --gic 2|3          GIC version on virt (default 3)
  --cpus N           CPUs (default 4; zcu102 always has 4)
  --mem SIZE         RAM (default 1G; 2G on zcu102)
  --cpu MODEL        CPU model on virt (default cortex-a57; also cortex-a53, max)
  --uboot            boot through U-Boot's booti instead of QEMU -kernel: on virt, Debian's
                     qemu_arm64 U-Boot; on raspi4b, Debian's u-boot-rpi (rpi_arm64) running
                     a boot.scr from an SD card image that holds the image and the modules
  --dtb FILE         use this host DTB as it is instead of making one
  --module ADDR=FILE load FILE at physical address ADDR (a boot module the LCM names);
                     may be repeated
  --timeout S        unattended: stop QEMU after S seconds (exit status 124); stdin unused
  --input FILE       with --timeout: the bytes typed on the console, read from FILE
  --input-when RE    with --input: type them once a console line matches the extended
                     regular expression RE (default: at once); when repeated, once every
                     RE has matched a line
  --stop-when RE      with --timeout: stop QEMU once a console line matches the extended
                     regular expression RE (when repeated, once every RE has matched a
                     line); the run then exits 0, for a machine that does not power off
                     by itself (a timeout still exits 124)
  --tpm              virt: a TPM 2.0 (swtpm, fresh state, behind QEMU's tpm-tis-device)
                     for the measured launch
  --fixed-dtb        virt: no random rng-seed/kaslr-seed in the host DTB, so that it is the
                     same every boot (a measured launch whose PCRs were predicted from
                     --dump-dtb); guests then get no rng-seed
  --dump-dtb FILE    write the host DTB exactly as the machine hands it to the hypervisor
                     (after QEMU's own changes: what `hlcheck --measure` wants) and exit
  --dynamic          the Dynamic demo (dts/dynamic-demo.dts): a Linux Control domain with a
                     shell, hlctl and images in /dynamic to create domains from
  --dry-run          make the DTB (in a temporary directory that is kept) and print the
                     QEMU command instead of running it
USAGE
}

machine=virt gic=3 cpus=4 mem="" cpu=cortex-a57 uboot=0 dtb="" timeout_s="" lcm="" dry=0 console=mini
tpm=0 dump_dtb="" dynamic=0 randomness=on
loaders=()
modules=()
bare=0
input=/dev/null
input_when=()
stop_when=()
while [ $# -gt 0 ]; do
    case "$1" in
        --machine) machine=$2; shift 2 ;;
        --gic) gic=$2; shift 2 ;;
        --cpus) cpus=$2; shift 2 ;;
        --mem) mem=$2; shift 2 ;;
        --cpu) cpu=$2; shift 2 ;;
        --uboot) uboot=1; shift ;;
        --bare) bare=1; shift ;;
        --input) input=$2; shift 2 ;;
        --input-when) input_when+=("$2"); shift 2 ;;
        --stop-when) stop_when+=("$2"); shift 2 ;;
        --dtb) dtb=$2; shift 2 ;;
        --module)
            [[ "$2" == *=* ]] || { echo "run.sh: --module wants ADDR=FILE" >&2; exit 2; }
            [ -f "${2#*=}" ] || { echo "run.sh: no module file ${2#*=}" >&2; exit 2; }
            modules+=("$2")
            shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --console) console=$2; shift 2 ;;
        --dry-run) dry=1; shift ;;
        --tpm) tpm=1; shift ;;
        --fixed-dtb) randomness=off; shift ;;
        --dump-dtb) dump_dtb=$2; shift 2 ;;
        --dynamic) dynamic=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) [ -z "$lcm" ] || { echo "run.sh: one LCM file at most" >&2; exit 2; }; lcm=$1; shift ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! command -v qemu-system-aarch64 >/dev/null || ! command -v dtc >/dev/null || ! command -v mkenvimage >/dev/null; then
    bash scripts/install-deps.sh >&2
fi
image=$(bash scripts/build.sh | tail -n 1)
if [ "$dynamic" -eq 1 ]; then
    [ -z "$lcm" ] && [ -z "$dtb" ] || { echo "run.sh: --dynamic brings its own LCM" >&2; exit 2; }
    lcm=dts/dynamic-demo.dts
    ramdisk=$(bash scripts/make-control-ramdisk.sh | tail -n 1)
    modules+=("0x50000000=target/guests/linux.img" "0x53000000=$ramdisk")
elif [ -z "$lcm" ] && [ -z "$dtb" ] && [ "$bare" -eq 0 ]; then
    lcm=dts/demo.dts
    guests=$(bash scripts/make-linux-guest.sh | tail -n 1)
    modules+=("0x50000000=$guests/linux.img" "0x53000000=$guests/initramfs.cpio.gz")
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hyperlaunch-run.XXXXXX")
swtpms=()
cleanup() {
    for p in ${swtpms[@]+"${swtpms[@]}"}; do kill "$p" 2>/dev/null || true; done
    # A dry run leaves its files for the printed command to use.
    [ "$dry" -eq 1 ] || rm -rf "$work"
}
trap cleanup EXIT

# tpm_up: a fresh software TPM for the next QEMU run (one connection: swtpm ends with it);
# its QEMU options in tpm_args.
tpm_args=()
tpm_up() {
    [ "$tpm" -eq 1 ] || return 0
    local d=$work/tpm${#swtpms[@]}
    mkdir -p "$d"
    swtpm socket --tpm2 --tpmstate dir="$d" --ctrl type=unixio,path="$d/sock" --terminate \
        --log file="$d/log" &
    swtpms+=($!)
    for _ in $(seq 100); do [ -S "$d/sock" ] && break; sleep 0.05; done
    tpm_args=(-chardev "socket,id=chrtpm,path=$d/sock" -tpmdev emulator,id=tpm0,chardev=chrtpm
        -device tpm-tis-device,tpmdev=tpm0)
}
if [ "$tpm" -eq 1 ]; then
    [ "$machine" = virt ] || { echo "run.sh: --tpm is for virt only" >&2; exit 2; }
    [ "$dry" -eq 0 ] || { echo "run.sh: --tpm and --dry-run do not go together" >&2; exit 2; }
    command -v swtpm >/dev/null || bash scripts/install-deps.sh >&2
fi

# The Raspberry Pi 4 has 960 MiB of RAM from 0: modules named at 0x40000000-0x5fffffff (the
# guest LCMs' places on QEMU virt) move down by 0x30000000.
low() {
    local a=$(($1))
    [ "$machine" = raspi4b ] && [ "$a" -ge $((0x40000000)) ] && [ "$a" -lt $((0x60000000)) ] && a=$((a - 0x30000000))
    printf '0x%x' "$a"
}
# (U-Boot on the Raspberry Pi 4 loads the modules from the SD card instead.)
for m in ${modules[@]+"${modules[@]}"}; do
    [ "$machine$uboot" != raspi4b1 ] || continue
    loaders+=(-device "loader,file=${m#*=},addr=$(low "${m%%=*}"),force-raw=on")
done
if [ "$machine" = raspi4b ] && [ -n "$lcm" ]; then
    sed -E 's/0x4([0-9a-fA-F]{7})/0x1\1/g; s/@4([0-9a-fA-F]{7})/@1\1/g; s/0x5([0-9a-fA-F]{7})/0x2\1/g; s/@5([0-9a-fA-F]{7})/@2\1/g' "$lcm" >"$work/lcm-low.dts"
    lcm=$work/lcm-low.dts
fi

# Device options shared by the DTB dump and the run, so that the DTB matches the machine.
common=(-nodefaults -display none -net none)
case "$machine" in
    virt)
        [ -n "$mem" ] || mem=1G
        # QEMU's random rng-seed and kaslr-seed in /chosen: the hypervisor seeds its
        # guests' random number generators from them (--fixed-dtb leaves them out).
        qargs=(-M "virt,virtualization=on,gic-version=$gic,dtb-randomness=$randomness" -cpu "$cpu" -smp "$cpus" -m "$mem")
        ;;
    zcu102)
        [ -n "$mem" ] || mem=2G
        [ "$uboot" -eq 0 ] || { echo "run.sh: --uboot is for virt only (Debian ships no ZynqMP U-Boot)" >&2; exit 2; }
        qargs=(-M "xlnx-zcu102,virtualization=on" -m "$mem")
        common+=(-audiodev none,id=snd0)
        ;;
    raspi4b)
        qemu10=$(bash scripts/install-qemu10.sh | tail -n 1)
        qargs=(-M raspi4b -L "${qemu10%/usr/bin/*}/usr/share/qemu")
        ;;
    *) echo "run.sh: unknown machine $machine" >&2; exit 2 ;;
esac
qemu=${qemu10:-qemu-system-aarch64}

if [ -z "$dtb" ]; then
    dtb=$work/host.dtb
    case "$machine" in
        virt)
            tpm_up
            qemu-system-aarch64 "${qargs[@]}" "${common[@]}" ${tpm_args[@]+"${tpm_args[@]}"} \
                -machine dumpdtb="$work/base.dtb" >/dev/null 2>&1
            ;;
        # Debian's board DTB as it is (QEMU makes none for this machine).
        zcu102) cp "$(bash scripts/make-linux-guest.sh | tail -n 1)/board/zynqmp-zcu102-rev1.0.dtb" "$work/base.dtb" ;;
        raspi4b)
            board=$(bash scripts/make-linux-guest.sh | tail -n 1)/board/bcm2711-rpi-4-b.dtb
            cp "$board" "$work/base.dtb"
            [ "$console" = mini ] || fdtput -t s "$work/base.dtb" /chosen stdout-path "serial0:115200n8"
            ;;
    esac
    if [ -n "$lcm" ]; then
        bash scripts/merge-lcm.sh "$work/base.dtb" "$lcm" "$dtb"
    else
        cp "$work/base.dtb" "$dtb"
    fi
fi

boot=() kernel=$image
if [ "$uboot" -eq 1 ] && [ "$machine" = raspi4b ]; then
    # The board's own flow: the firmware (here QEMU) starts U-Boot with the DTB; U-Boot's
    # distro boot finds boot.scr on the SD card's FAT partition, which loads the modules
    # and the image and boots it with that DTB (platforms/rpi4/README.md).
    command -v mcopy >/dev/null || bash scripts/install-deps.sh >&2
    kernel=$(bash scripts/install-uboot-rpi.sh | tail -n 1)
    sd=$work/sd.img part=$work/sd.img@@1M
    truncate -s 256M "$sd"
    # An MBR with one FAT32 (LBA) partition from sector 2048 to the end.
    le32() { printf '\\x%02x' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)); }
    printf "\x00\xfe\xff\xff\x0c\xfe\xff\xff$(le32 2048)$(le32 $(($(stat -c %s "$sd") / 512 - 2048)))" |
        dd of="$sd" bs=1 seek=446 conv=notrunc status=none
    printf '\x55\xaa' | dd of="$sd" bs=1 seek=510 conv=notrunc status=none
    mformat -i "$part" -F -v HLBOOT ::
    {
        echo "# hyperlaunch from this card: its boot modules, the image, then booti with the DTB"
        echo "# the firmware prepared (U-Boot's fdt_addr)."
        i=0
        for m in ${modules[@]+"${modules[@]}"}; do
            mcopy -i "$part" "${m#*=}" "::module$i.bin"
            echo "load \${devtype} \${devnum}:\${distro_bootpart} $(low "${m%%=*}") module$i.bin"
            i=$((i + 1))
        done
        echo "load \${devtype} \${devnum}:\${distro_bootpart} \${kernel_addr_r} hyperlaunch.img"
        echo "booti \${kernel_addr_r} - \${fdt_addr}"
    } >"$work/boot.cmd"
    mkimage -A arm64 -T script -C none -d "$work/boot.cmd" "$work/boot.scr" >/dev/null
    mcopy -i "$part" "$image" ::hyperlaunch.img
    mcopy -i "$part" "$work/boot.scr" ::boot.scr
    boot=(-drive "if=sd,format=raw,file=$sd")
elif [ "$uboot" -eq 1 ]; then
    # A saved U-Boot environment in the second flash bank: no prompt, load the image QEMU
    # hands over through fw_cfg, and booti it with the DTB U-Boot was given.
    mkenvimage -s 0x40000 -o "$work/env.bin" platforms/qemu-virt/uboot-env.txt
    truncate -s 64M "$work/env.bin"
    boot=(-bios /usr/lib/u-boot/qemu_arm64/u-boot.bin -drive "if=pflash,unit=1,format=raw,file=$work/env.bin")
fi

if [ -n "$timeout_s" ]; then
    serial=(-serial stdio -monitor none)
    # The Raspberry Pi 4's mini UART is QEMU's second serial port (the first, the PL011).
    [ "$machine$console" != raspi4bmini ] || serial=(-serial null -serial stdio -monitor none)
else
    # Interactive: Ctrl-A x quits QEMU, Ctrl-A Ctrl-A sends one Ctrl-A.
    serial=(-serial mon:stdio)
    [ "$machine$console" != raspi4bmini ] || serial=(-serial null -serial mon:stdio)
fi

tpm_up
cmd=("$qemu" "${qargs[@]}" "${common[@]}" ${tpm_args[@]+"${tpm_args[@]}"} "${serial[@]}" "${boot[@]}"
    ${loaders[@]+"${loaders[@]}"} -kernel "$kernel" -dtb "$dtb")
if [ -n "$dump_dtb" ]; then
    "${cmd[@]}" -machine dumpdtb="$dump_dtb" >/dev/null 2>&1 </dev/null
    exit 0
fi
if [ "$dry" -eq 1 ]; then
    printf '%q ' "${cmd[@]}"; echo
    exit 0
fi
# all_match FILE RE...: whether every RE matches a line of FILE (without its CR).
all_match() {
    local f=$1 re lines=$1.lines.$BASHPID
    shift
    tr -d '\r' <"$f" >"$lines"
    for re in "$@"; do
        grep -a -q -E -- "$re" "$lines" || return 1
    done
}
if [ -n "$timeout_s" ] && [ $((${#input_when[@]} + ${#stop_when[@]})) -gt 0 ]; then
    # The input waits for its cue on the console: QEMU reads a FIFO that a watcher opens
    # at once and writes to once a console line matches. Another watcher stops QEMU
    # once the console shows every --stop-when line.
    mkfifo "$work/in"
    : >"$work/out"
    (
        exec 3>"$work/in"
        while [ "${#input_when[@]}" -gt 0 ] && ! all_match "$work/out" "${input_when[@]}"; do
            sleep 0.2
        done
        cat "$input" >&3
        sleep "$timeout_s"
    ) &
    watcher=$!
    stopper=""
    if [ "${#stop_when[@]}" -gt 0 ]; then
        (
            while ! all_match "$work/out" "${stop_when[@]}"; do sleep 0.2; done
            : >"$work/stopped"
            kill -TERM "$(cat "$work/qemu.pid")" 2>/dev/null || true
        ) &
        stopper=$!
    fi
    status=0
    timeout -k 5 "$timeout_s" "${cmd[@]}" -pidfile "$work/qemu.pid" <"$work/in" | tee "$work/out" ||
        status=${PIPESTATUS[0]}
    for p in $watcher $stopper; do
        pkill -P "$p" 2>/dev/null || true
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ -e "$work/stopped" ] && [ "$status" -ne 124 ]; then
        echo "run.sh: stopped QEMU: the console showed every --stop-when line" >&2
        status=0
    fi
    exit "$status"
fi
if [ -n "$timeout_s" ]; then
    status=0
    timeout -k 5 "$timeout_s" "${cmd[@]}" <"$input" || status=$?
    exit "$status"
fi
"${cmd[@]}"
