/// Shell scripts that run inside the appliance. They are busybox sh scripts so that they work
/// the same in the micro and the debian profile (the builder installs busybox at
/// /usr/lib/baton/busybox in both).
enum GuestScripts {
    /// initramfs /init, µCernVM style: the read-only squashfs root from a virtio disk gets a
    /// tmpfs upper layer through overlayfs, then switch_root.
    static let initramfsInit = #"""
#!/bin/sh
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
root=/dev/vda
init=/sbin/baton-init
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    baton.root=*) root="${arg#baton.root=}" ;;
    baton.init=*) init="${arg#baton.init=}" ;;
    baton.probe) echo "baton-probe: initramfs reached"; poweroff -f ;;
  esac
done
for m in $(cat /etc/baton-modules); do
  insmod "/lib/modules/$m" || echo "baton-initramfs: insmod $m failed"
done
i=0
while [ ! -b "$root" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
fail() { echo "baton-initramfs: $*"; poweroff -f; }
[ -b "$root" ] || fail "root device $root not found"
mkdir -p /mnt/ro /mnt/rw /newroot
mount -t squashfs -o ro "$root" /mnt/ro || fail "cannot mount squashfs from $root"
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay overlay -o lowerdir=/mnt/ro,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /newroot \
  || fail "cannot mount overlay root"
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot "$init"
"""#

    /// PID 1 of the booted appliance: contextualise, run checks, power off.
    static let batonInit = #"""
#!/usr/lib/baton/busybox sh
export PATH=/usr/lib/baton/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /tmp && chmod 1777 /tmp
[ -s /etc/hostname ] && hostname "$(cat /etc/hostname)"
echo "baton-init: root filesystem up ($(grep ' / ' /proc/mounts | cut -d' ' -f3))"
/sbin/baton-context
sync
poweroff -f
"""#

    /// Reads the seed disk (cloud-init NoCloud, glideinWMS base64####args, or plain ini),
    /// runs the checks and prints TAP on the console.
    static let batonContext = #"""
#!/usr/lib/baton/busybox sh
export PATH=/usr/lib/baton/bin:/usr/sbin:/usr/bin:/sbin:/bin
SEED=/run/baton-seed
W=/run/baton
mkdir -p $SEED $W
dev=""
for d in /dev/vdb /dev/vdc /dev/vdd; do
  [ -b $d ] || continue
  if mount -o ro $d $SEED 2>/dev/null; then dev=$d; break; fi
done
if [ -z "$dev" ]; then echo "1..0 # SKIP no contextualisation disk"; exit 0; fi
: > $W/checks
args=""
host=""
strip() { tr -d '\r'; }
if [ -f $SEED/meta-data ]; then
  method=nocloud
  host=$(strip < $SEED/meta-data | sed -n 's/^local-hostname:[[:space:]]*//p' | tr -d "\"'")
  h2=$(strip < $SEED/user-data | sed -n 's/^hostname:[[:space:]]*//p' | tr -d "\"'")
  [ -n "$h2" ] && host=$h2
  # cloud-config subset: every runcmd item (a single-quoted string) is one TAP check.
  strip < $SEED/user-data | awk '
    /^runcmd:/ { r = 1; next }
    /^[^ \t-]/ { r = 0 }
    r && /^[ \t]*- / {
      sub(/^[ \t]*- /, "")
      if ($0 ~ /^'\''.*'\''$/) { $0 = substr($0, 2, length($0) - 2); gsub(/'\'''\''/, "'\''") }
      print $0 "\t" $0
    }' > $W/checks
else
  ud=$SEED/userdata
  [ -f $ud ] || ud=$SEED/user-data
  if [ ! -f $ud ]; then echo "1..0 # SKIP seed disk has neither meta-data nor userdata"; exit 0; fi
  if head -c 1 $ud | grep -q '\['; then
    method=ini
    strip < $ud > $W/ini
  else
    method=glideinwms
    content=$(strip < $ud)
    payload=${content%%####*}
    case "$content" in *"####"*) args=${content#*####} ;; esac
    echo "$payload" | base64 -d > $W/ini 2>/dev/null || { echo "1..1"; echo "not ok 1 - user data is not base64####args"; exit 0; }
  fi
  awk -v W=$W '
    /^[ \t]*[#;]/ { next }
    /^\[.*\][ \t]*$/ { sec = $0; gsub(/^\[|\][ \t]*$/, "", sec); next }
    {
      i = index($0, "="); if (!i) next
      k = substr($0, 1, i - 1); v = substr($0, i + 1)
      gsub(/^[ \t]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v)
      if (sec == "checks") print k "\t" v > (W "/checks")
      else if (sec == "baton" && k == "hostname") print v > (W "/hostname")
    }' $W/ini
  [ -f $W/hostname ] && host=$(cat $W/hostname)
fi
[ -n "$host" ] && hostname "$host"
echo "$args" > $W/args
export BATON_ARGS="$args" BATON_METHOD="$method"
n=$(grep -c . $W/checks)
echo "# baton-context: method=$method seed=$dev host=$(hostname)"
echo "1..$n"
i=0
while IFS='	' read -r name cmd; do
  [ -n "$name" ] || continue
  i=$((i + 1))
  if (cd / && sh -c "$cmd") > $W/out 2>&1 < /dev/null; then
    echo "ok $i - $name"
  else
    echo "not ok $i - $name"
    sed 's/^/# /' $W/out | head -20
  fi
done < $W/checks
echo "# baton-context: done"
"""#
}
