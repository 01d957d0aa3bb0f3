# U-Boot script for a Raspberry Pi 4 (compile: mkimage -A arm64 -T script -C none -d boot.cmd
# boot.scr): the boot modules the LCM names, each at its module-addr, then hyperlaunch,
# booted with the DTB the Pi firmware prepared. Edit the module lines to match your LCM.
load ${devtype} ${devnum}:${distro_bootpart} 0x20000000 linux.img
load ${devtype} ${devnum}:${distro_bootpart} 0x23000000 initramfs.cpio.gz
load ${devtype} ${devnum}:${distro_bootpart} ${kernel_addr_r} hyperlaunch.img
booti ${kernel_addr_r} - ${fdt_addr}
