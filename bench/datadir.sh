#!/usr/bin/env bash
# Give the benchmark's ClickHouse a data directory on a journaled
# filesystem, as a production server has.
#
#   bench/datadir.sh DIR [SIZE]
#
# On ext4 without a journal (this project's development machines), every
# file ClickHouse creates makes the kernel skip the inodes deleted in the
# last 60-360 s (fs/ext4/ialloc.c, recently_deleted), one by one. A bench
# run creates about 30,000 files and the drop of the run before deletes as
# many, so the next run's server spent up to 37 % of its CPU in that scan,
# more with every run (bench/RESULTS.md, "ext4 without a journal"). A
# journaled ext4, XFS or tmpfs never does it.
#
# When DIR's filesystem is ext4 without a journal, DIR becomes the mount
# point of a journaled ext4 in the sparse file DIR.img (SIZE, default 32G),
# made and mounted once (root and a loop device needed); elsewhere DIR is
# just created. Idempotent. Says on stderr what it did; fails only when
# DIR cannot be created.
set -euo pipefail
say() { printf 'datadir.sh: %s\n' "$*" >&2; }
if [[ $# -lt 1 ]]; then
	sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
dir=$1 size=${2:-32G}
mkdir -p "$dir"
if mountpoint -q "$dir"; then
	exit 0
fi

# journal_less DIR: DIR is on ext4 whose journal thread is "<none>".
journal_less() {
	local src fstype dev
	read -r src fstype < <(findmnt -n -o SOURCE,FSTYPE --target "$1") || return 1
	[[ $fstype == ext4 ]] || return 1
	dev=$(basename "$(readlink -f "$src")")
	[[ -r /sys/fs/ext4/$dev/journal_task ]] && [[ $(</sys/fs/ext4/$dev/journal_task) == "<none>" ]]
}

if ! journal_less "$dir"; then
	exit 0
fi
if [[ -n $(ls -A "$dir") ]]; then
	say "$dir is on ext4 without a journal and not empty: left as it is (ClickHouse pays ext4's scan of recently deleted inodes there)"
	exit 0
fi
img=$dir.img
if [[ ! -e $img ]]; then
	truncate -s "$size" "$img"
	if ! mkfs.ext4 -q -F "$img" 2>/dev/null; then
		rm -f "$img"
		say "cannot make an ext4 in $img: $dir left on a journal-less ext4"
		exit 0
	fi
fi
if ! mount -o loop "$img" "$dir" 2>/dev/null; then
	say "cannot mount $img (root and a loop device are needed): $dir left on a journal-less ext4"
	exit 0
fi
say "$dir: a journaled ext4 in $img (its own filesystem was ext4 without a journal)"
