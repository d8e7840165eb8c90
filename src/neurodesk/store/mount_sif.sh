# Body of store/images/<hex>/mount.sh; render_script (sifmount.py) puts the nd_* values
# of one image above it. The one place that mounts: `neurodesk exec` runs it too.
nd_dir=$(cd "${0%/*}" && pwd -P) || exit 1
nd_root=$nd_dir/rootfs
nd_say() { echo "neurodesk: $nd_id: $*" >&2; }
nd_lazy() { [ "$(readlink "$nd_root")" = mnt/lazy ]; }
# A directory that answers: the kernel keeps a squashfuse_ll mount's entries and attributes for
# ever, so stat succeeds on a mount whose daemon died; opening the directory asks the daemon
# (ENOTCONN when dead). `true`, not `:`: a failed redirection ends the shell for a special one.
nd_alive() { [ -d "$1/." ] && { true <"$1/."; } 2>/dev/null; }
nd_ok() {
  { nd_alive "$nd_root" && [ ! -e "$nd_root/.neurodesk-unmounted" ]; } || return 1
  nd_lazy || return 0
  [ -d "$nd_dir/remote/." ] && [ ! -s "$nd_dir/remote.failed" ]
}
nd_ok && exit 0
command -v flock >/dev/null 2>&1 || { nd_say "flock is not installed (apt-get install util-linux)"; exit 1; }
exec 9>>"$nd_dir/mount.lock" || exit 1
if ! flock -w "$nd_wait" 9; then
  nd_say "another call has been mounting this image for ${nd_wait}s; try again, or run 'neurodesk gc'"
  exit 1
fi
nd_ok && { nd_lazy || : >"$nd_dir/remote.failed"; exit 0; }
nd_unmount() {
  { fusermount3 -u -z "$1" || fusermount -u -z "$1" || umount -l "$1"; } >/dev/null 2>&1
}
# The httpdirfs of this image (its pid in remote.pid), if it still runs: ended.
nd_kill_remote() {
  nd_p=$(cat "$nd_dir/remote.pid" 2>/dev/null) || return 0
  case $({ tr '\0' ' ' <"/proc/$nd_p/cmdline"; } 2>/dev/null) in
    *httpdirfs*"$nd_dir/remote"*) kill -KILL "$nd_p" 2>/dev/null ;;
  esac
  rm -f "$nd_dir/remote.pid"
}
# Is a read waiting on httpdirfs $1? Its FUSE connection's request count where the fusectl
# file system is mounted (/sys/fs/fuse/connections), else a thread of it inside a transfer
# (httpdirfs polls its sockets only while a read waits for the server).
nd_busy() {
  if [ -r "$nd_conn/waiting" ]; then
    nd_n=0
    read -r nd_n <"$nd_conn/waiting" 2>/dev/null
    [ "${nd_n:-0}" -gt 0 ] 2>/dev/null
    return
  fi
  for nd_t in /proc/"$1"/task/*/wchan; do
    nd_c=
    read -r nd_c <"$nd_t" 2>/dev/null # (no newline at its end: read fails, but sets nd_c)
    case $nd_c in *poll*) return 0 ;; esac
  done
  return 1
}
# Read the squashfs tables of remote file $1 ahead (kept: -o kernel_cache), 8 pieces at a time:
# squashfuse would read them one block at a time while mounting and looking up paths, one
# request each (and httpdirfs 1.2.5 spends ~100 ms on every request, however small).
nd_warm() {
  [ "$nd_tables" -gt 0 ] || return 0
  nd_s=$nd_tables
  nd_pids=
  nd_j=0
  while [ "$nd_s" -lt "$nd_tables_end" ]; do
    dd if="$1" of=/dev/null bs=512k count=1 skip="$nd_s" iflag=skip_bytes 2>/dev/null 9>&- &
    nd_pids="$nd_pids $!"
    nd_s=$((nd_s + 524288))
    nd_j=$((nd_j + 1))
    if [ "$nd_j" -ge 8 ]; then
      wait $nd_pids
      nd_pids=
      nd_j=0
    fi
  done
  [ -z "$nd_pids" ] || wait $nd_pids
}
# The watchdog of httpdirfs $1: every second, while a read waits and httpdirfs has written
# nothing to the kernel (no reply), a count goes up; at $nd_stall the server is taken as
# gone: the FUSE connection is aborted and httpdirfs ended, so waiting reads fail at once.
nd_watch() {
  nd_conn=/sys/fs/fuse/connections/$(stat -c %d "$nd_dir/remote" 2>/dev/null)
  nd_last=
  nd_quiet=0
  while kill -0 "$1" 2>/dev/null; do
    sleep 1
    nd_w=
    while read -r nd_k nd_v; do
      [ "$nd_k" = wchar: ] && nd_w=$nd_v && break
    done <"/proc/$1/io" 2>/dev/null
    if [ -n "$nd_w" ] && [ "$nd_w" = "$nd_last" ] && nd_busy "$1"; then
      nd_quiet=$((nd_quiet + 1))
    else
      nd_quiet=0
    fi
    nd_last=$nd_w
    if [ "$nd_quiet" -ge "$nd_stall" ]; then
      echo "Error: the server sent nothing for ${nd_stall}s (transfer stalled)" >>"$nd_dir/remote.failed"
      [ -w "$nd_conn/abort" ] && echo 1 >"$nd_conn/abort"
      kill -KILL "$1" 2>/dev/null
      nd_unmount "$nd_dir/remote"
      return 0
    fi
  done
}
nd_fuse() {
  case ${NEURODESK_FUSE:-} in off|0|no|false) nd_why="NEURODESK_FUSE=off"; return 1 ;; esac
  nd_mounter=
  for nd_h in $nd_mounters; do
    command -v "$nd_h" >/dev/null 2>&1 && { nd_mounter=$nd_h; break; }
  done
  [ -n "$nd_mounter" ] || { nd_why="squashfuse is not installed"; return 1; }
  [ -e /dev/fuse ] || { nd_why="there is no /dev/fuse"; return 1; }
  # libfuse opens /dev/fuse itself; a non-root mount(2) then goes through setuid fusermount3
  [ -r /dev/fuse ] && [ -w /dev/fuse ] || { nd_why="no read-write access to /dev/fuse"; return 1; }
  [ "$(id -u)" = 0 ] && return 0
  for nd_h in fusermount3 fusermount; do
    nd_p=$(command -v "$nd_h") && [ -u "$nd_p" ] && return 0
  done
  nd_why="no setuid fusermount3 (apt-get install fuse3)"
  return 1
}
nd_target=$(readlink "$nd_root") || { nd_say "rootfs link is missing; run: neurodesk rm $nd_id"; exit 1; }
nd_mnt=$nd_dir/$nd_target
if nd_lazy && { [ ! -d "$nd_dir/remote/." ] || [ -s "$nd_dir/remote.failed" ]; }; then
  nd_say "the connection to $nd_url was lost (reads failed with I/O errors); connecting again"
  nd_unmount "$nd_dir/$nd_target"
  nd_kill_remote
  nd_unmount "$nd_dir/remote"
fi
if ! nd_alive "$nd_mnt"; then
  nd_say "its mount had died (transport endpoint not connected); mounting it again"
  nd_unmount "$nd_mnt"
fi
case $nd_target in
  mnt/lazy)
    nd_fuse || { nd_say "cannot read it lazily: FUSE is not usable here ($nd_why); install it without --lazy"; exit 1; }
    if [ ! -e "$nd_dir/remote/$nd_remote" ]; then
      # The block cache ($nd_cache, set only for httpdirfs 1.2.10 or newer) keeps what was
      # read across mounts and reboots; it is off with older ones: 1.2.5's returns zeros for a
      # read that crosses one of its segments when the first segment is not cached yet, so
      # squashfs blocks came back corrupt. The page cache (-o kernel_cache) keeps what was
      # read while mounted; --prefetch makes the local copy. A cache directory this user
      # cannot write (an image installed by root) leaves the cache off.
      # httpdirfs runs in the foreground of a background pipeline: its error lines (a failed
      # transfer leaves it alive but failing) land in remote.failed, which the wrappers check.
      # It has no transfer timeout (a server that stops sending mid-transfer would hang reads
      # for ever), so a watchdog beside it ends it once a read has had no reply for
      # $nd_stall s: readers then get an I/O error and the next call connects again.
      nd_kill_remote
      : >"$nd_dir/remote.failed"
      rm -f "$nd_dir/remote.pid"
      set -- -f --retry-wait 1 --no-range-check -o kernel_cache
      if [ -n "$nd_cache" ] && mkdir -p "$nd_cache" 2>/dev/null && [ -w "$nd_cache" ]; then
        set -- "$@" --cache --cache-location "$nd_cache" --dl-seg-size "$nd_segment"
      fi
      (
        sh -c 'echo $$ >"$1/remote.pid" && shift && exec "$@"' \
          sh "$nd_dir" "$nd_httpdirfs" "$@" --single-file-mode "$nd_url" "$nd_dir/remote" 2>&1 \
          | grep --line-buffered -E '^(Error|error)' >>"$nd_dir/remote.failed"
      ) </dev/null >/dev/null 2>&1 9>&- &
      nd_i=0
      while [ ! -e "$nd_dir/remote/$nd_remote" ] && [ "$nd_i" -lt "$((nd_stall * 10))" ]; do
        [ -s "$nd_dir/remote.failed" ] && break
        sleep 0.1
        nd_i=$((nd_i + 1))
      done
      if [ ! -e "$nd_dir/remote/$nd_remote" ]; then
        nd_kill_remote
        nd_unmount "$nd_dir/remote"
        nd_why=$(head -n 1 "$nd_dir/remote.failed" 2>/dev/null)
        nd_say "cannot reach $nd_url (${nd_why:-no answer in ${nd_stall}s})"
        exit 1
      fi
      nd_p=$(cat "$nd_dir/remote.pid")
      # (a subshell: a function call with redirections would keep copies of this stdout open)
      (nd_watch "$nd_p") </dev/null >/dev/null 2>&1 9>&- &
      nd_warm "$nd_dir/remote/$nd_remote"
    fi
    nd_src=$nd_dir/remote/$nd_remote
    ;;
  *)
    nd_src=$nd_dir/image.sif
    nd_have=$(stat -c %s "$nd_src" 2>/dev/null) || nd_have=0
    if [ "$nd_have" != "$nd_size" ]; then
      nd_say "$nd_src is truncated or missing ($nd_have of $nd_size bytes); run: neurodesk rm $nd_id, then install it again"
      exit 1
    fi
    if ! nd_fuse; then
      nd_say "FUSE is not usable here ($nd_why): unpacking the image once with unsquashfs"
      nd_tmp=$nd_dir/mnt/unpacked.tmp
      rm -rf "$nd_tmp"
      if ! unsquashfs -n -no-xattrs -f -d "$nd_tmp" -o "$nd_offset" "$nd_src" >/dev/null 2>&1; then
        rm -rf "$nd_tmp"
        nd_say "its squashfs partition is corrupt (unsquashfs failed); run: neurodesk rm $nd_id, then install it again"
        exit 1
      fi
      find "$nd_tmp" \( -type b -o -type c -o -type p -o -type s \) -exec rm -f {} + 2>/dev/null
      find "$nd_tmp" ! -type l -perm /6000 -exec chmod ug-s {} + 2>/dev/null
      rm -rf "$nd_dir/mnt/unpacked" && mv "$nd_tmp" "$nd_dir/mnt/unpacked" || exit 1
      ln -s mnt/unpacked "$nd_dir/rootfs.new" && mv -f -T "$nd_dir/rootfs.new" "$nd_root" || exit 1
      exit 0
    fi
    ;;
esac
# squashfuse_ll where there is one (the kernel then keeps all it learns of this image that
# never changes), with the options of the header (nd_opts_<its name>)
eval "nd_o=\$nd_opts_$nd_mounter"
if ! "$nd_mounter" -o "$nd_o,offset=$nd_offset" "$nd_src" "$nd_mnt" 2>>"$nd_dir/squashfuse.log" 9>&-; then
  nd_unmount "$nd_mnt"
  nd_say "its squashfs partition could not be mounted (corrupt or truncated SIF; see $nd_dir/squashfuse.log); run: neurodesk rm $nd_id, then install it again"
  exit 1
fi
if ! nd_ok; then
  nd_unmount "$nd_mnt"
  nd_say "its squashfs partition is unreadable (corrupt SIF); run: neurodesk rm $nd_id, then install it again"
  exit 1
fi
