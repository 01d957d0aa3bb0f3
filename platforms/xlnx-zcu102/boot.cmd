# U-Boot script for a ZCU102: hyperlaunch from the SD card's first partition.
load mmc 0:1 0x10000000 hyperlaunch.img
booti 0x10000000 - ${fdtcontroladdr}
