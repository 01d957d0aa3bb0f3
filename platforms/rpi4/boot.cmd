# U-Boot script for a Raspberry Pi 4: hyperlaunch from the SD card's boot partition, with
# the DTB the Pi firmware prepared.
load mmc 0:1 ${kernel_addr_r} hyperlaunch.img
booti ${kernel_addr_r} - ${fdt_addr}
