// Filesystems that deliver no inotify events (network and VM shares): the
// watcher switches to polling there.
import { mountinfo } from "../platform/proc.ts";
import path from "node:path";

/** Filesystem types on which inotify sees no (or only local) changes: use poll mode there. */
const NO_EVENT_FS = new Set(["nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "sshfs", "vboxsf", "fuse.vmhgfs-fuse", "vmhgfs", "drvfs", "fuse.rclone", "afs", "ceph", "glusterfs", "fuse.glusterfs"]);

/** Parse /proc/self/mountinfo text: filesystem type of the mount holding `abs`. */
export function fsTypeFromMountinfo(mountinfo: string, abs: string): string | null {
  let best: { mp: string; type: string } | null = null;
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const mp = (left[4] ?? "").replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    const type = line.slice(sep + 3).split(" ")[0] ?? "";
    const inside = mp === "/" || abs === mp || abs.startsWith(`${mp}/`);
    if (inside && (!best || mp.length >= best.mp.length)) best = { mp, type };
  }
  return best?.type ?? null;
}

/**
 * If `root` lives on a filesystem where native events don't arrive (NFS, SMB,
 * 9p/WSL drvfs, vboxsf, sshfs...), return its type so the caller can switch to
 * poll mode or print a hint; null otherwise (or when unknown, e.g. not Linux).
 */
export function noEventFilesystem(root: string): string | null {
  const info = mountinfo();
  if (info === undefined) return null;
  const type = fsTypeFromMountinfo(info, path.resolve(root));
  return type && NO_EVENT_FS.has(type) ? type : null;
}
