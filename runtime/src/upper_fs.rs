//! A world's upper layer on a filesystem of its own: a sparse ext4 image on
//! a loop device, mounted `nosuid,nodev,noexec` under the world's (0700)
//! dir. What the world writes is capped at the image's size (the world gets
//! ENOSPC, the host's disk does not fill), and no host user — root
//! included — can run a file the world wrote from the host side, setuid or
//! not (inside the world, the overlay's own mount decides).
//!
//! Cost: a template image per size is made once with `mkfs.ext4` (tens of
//! ms); each world copies only the template's data extents (about 4 MiB for
//! any size: the image is sparse), takes a free loop device and mounts it —
//! a few milliseconds. The loop device is set to clear itself when the
//! mount goes away (`LO_FLAGS_AUTOCLEAR`), so unmounting is the only
//! cleanup besides removing the image.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};

/// The image, next to the mount point, in the world's dir.
const IMAGE: &str = "layer.img";
/// Where the image is mounted; `upper/` and `work/` live in it.
const MOUNT: &str = "layer";

/// A world's upper filesystem, mounted.
#[derive(Debug)]
pub(crate) struct UpperFs {
    mount_point: PathBuf,
}

impl UpperFs {
    /// Makes and mounts a filesystem of `size` bytes in `world_dir`, with
    /// the template images kept in `templates`.
    pub(crate) fn create(world_dir: &Path, templates: &Path, size: u64) -> Result<UpperFs> {
        let template = template(templates, size)?;
        let image = world_dir.join(IMAGE);
        copy_sparse(&template, &image).map_err(|e| Error::io("cannot copy", &image, e))?;
        let mount_point = world_dir.join(MOUNT);
        fs::create_dir_all(&mount_point)
            .map_err(|e| Error::io("cannot create", &mount_point, e))?;
        let device =
            attach(&image).map_err(|e| Error::io("cannot attach a loop device to", &image, e))?;
        let mounted = mount(
            Some(&device.path),
            &mount_point,
            Some("ext4"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME,
            None::<&str>,
        );
        // The mount holds the loop device now (autoclear detaches it when
        // the mount goes): our fd is not needed.
        drop(device);
        mounted.map_err(|e| Error::io("cannot mount", &mount_point, e.into()))?;
        Ok(UpperFs { mount_point })
    }

    pub(crate) fn upper(&self) -> PathBuf {
        self.mount_point.join("upper")
    }

    pub(crate) fn work(&self) -> PathBuf {
        self.mount_point.join("work")
    }
}

/// Where a world's upper filesystem would be mounted in `world_dir`.
pub(crate) fn mount_point(world_dir: &Path) -> PathBuf {
    world_dir.join(MOUNT)
}

/// Unmounts a world's upper filesystem (if mounted) and removes its image:
/// what it held is gone. Nothing to do for a world without one.
pub(crate) fn remove(world_dir: &Path) -> Result<()> {
    let mount_point = world_dir.join(MOUNT);
    // Detached: nothing in it is used any more (the world is gone); the
    // kernel finishes the unmount, releases the loop device (autoclear) and
    // only then frees the image's blocks — none of which the caller needs
    // to wait for (unlinking a 10 GiB sparse image while it is still held
    // only drops its name).
    match umount2(&mount_point, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::io("cannot unmount", &mount_point, e.into())),
    }
    let image = world_dir.join(IMAGE);
    match fs::remove_file(&image) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", &image, e)),
    }
}

/// The empty ext4 image of `size` bytes, made once: the costly `mkfs` runs
/// for the first world of a size only (under a lock, so two creates do not
/// race to make it).
fn template(templates: &Path, size: u64) -> Result<PathBuf> {
    crate::store::private_dir(templates)?;
    let path = templates.join(format!("ext4-{size}.img"));
    if path.exists() {
        return Ok(path);
    }
    let lock = File::open(templates).map_err(|e| Error::io("cannot open", templates, e))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io("cannot lock", templates, e.into()))?;
    if path.exists() {
        return Ok(path);
    }
    let tmp = templates.join(format!(".ext4-{size}.img.tmp"));
    let file = File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
    file.set_len(size)
        .map_err(|e| Error::io("cannot size", &tmp, e))?;
    drop(file);
    // No journal: the layer lives as long as one world, and a crash loses
    // the world anyway. Lazy init: nothing is written but the metadata.
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-O", "^has_journal", "-E"])
        .arg("lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0")
        .arg(&tmp)
        .output()
        .map_err(|e| Error::io("cannot run mkfs.ext4 (Debian: e2fsprogs) on", &tmp, e))?;
    if !out.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(
            "mkfs.ext4 failed on",
            &tmp,
            io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        ));
    }
    fs::rename(&tmp, &path).map_err(|e| Error::io("cannot rename", &tmp, e))?;
    Ok(path)
}

/// Copies `from` to `to` (a new file) reading and writing only its data
/// extents (`SEEK_DATA`/`SEEK_HOLE`): the holes stay holes.
fn copy_sparse(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{copy_file_range, seek, SeekFrom};
    let source = File::open(from)?;
    let target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    let len = source.metadata()?.len();
    target.set_len(len)?;
    let mut offset = 0u64;
    while offset < len {
        let data = match seek(&source, SeekFrom::Data(offset)) {
            Ok(data) => data,
            // No data after `offset`: the rest is a hole.
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = seek(&source, SeekFrom::Hole(data))?;
        let (mut from_off, mut to_off) = (data, data);
        while from_off < hole {
            let want = (hole - from_off) as usize;
            let n = copy_file_range(
                &source,
                Some(&mut from_off),
                &target,
                Some(&mut to_off),
                want,
            )?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        offset = hole;
    }
    Ok(())
}

/// A loop device attached to an image; detached by the kernel once nothing
/// (no mount, no fd) holds it.
struct LoopDevice {
    path: PathBuf,
    _fd: File,
}

mod ioctl {
    //! `linux/loop.h`: what `LOOP_CTL_GET_FREE` and `LOOP_CONFIGURE` take.
    pub const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4C82;
    pub const LOOP_CONFIGURE: libc::Ioctl = 0x4C0A;
    pub const LO_FLAGS_AUTOCLEAR: u32 = 4;

    #[repr(C)]
    pub struct LoopInfo64 {
        pub lo_device: u64,
        pub lo_inode: u64,
        pub lo_rdevice: u64,
        pub lo_offset: u64,
        pub lo_sizelimit: u64,
        pub lo_number: u32,
        pub lo_encrypt_type: u32,
        pub lo_encrypt_key_size: u32,
        pub lo_flags: u32,
        pub lo_file_name: [u8; 64],
        pub lo_crypt_name: [u8; 64],
        pub lo_encrypt_key: [u8; 32],
        pub lo_init: [u64; 2],
    }

    #[repr(C)]
    pub struct LoopConfig {
        pub fd: u32,
        pub block_size: u32,
        pub info: LoopInfo64,
        pub reserved: [u64; 8],
    }
}

/// Takes a free loop device and backs it with `image` (loop(4)). Another
/// process may take the same free device first: then the next one is
/// tried, as losetup(8) does.
fn attach(image: &Path) -> io::Result<LoopDevice> {
    let backing = OpenOptions::new().read(true).write(true).open(image)?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device
        // number or -1; it touches no memory of ours.
        let number = unsafe { libc::ioctl(control.as_raw_fd(), ioctl::LOOP_CTL_GET_FREE) };
        if number < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = PathBuf::from(format!("/dev/loop{number}"));
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)?;
        // SAFETY: all-zero is a valid LoopConfig (plain integers and arrays).
        let mut config: ioctl::LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = backing.as_fd().as_raw_fd() as u32;
        config.info.lo_flags = ioctl::LO_FLAGS_AUTOCLEAR;
        // SAFETY: LOOP_CONFIGURE reads a LoopConfig from a valid pointer
        // that outlives the call.
        let rc = unsafe { libc::ioctl(device.as_raw_fd(), ioctl::LOOP_CONFIGURE, &config) };
        if rc == 0 {
            return Ok(LoopDevice { path, _fd: device });
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EBUSY) {
            return Err(error);
        }
    }
    Err(io::Error::other("every free loop device was taken first"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_config_has_the_kernels_layout() {
        assert_eq!(std::mem::size_of::<ioctl::LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<ioctl::LoopConfig>(), 304);
    }

    #[test]
    fn a_sparse_copy_keeps_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        let file = File::create(&from).unwrap();
        file.set_len(64 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        file.write_all_at(b"start", 0).unwrap();
        file.write_all_at(b"middle", 32 << 20).unwrap();
        let to = dir.path().join("to");
        copy_sparse(&from, &to).unwrap();
        assert_eq!(fs::read(&from).unwrap(), fs::read(&to).unwrap());
        use std::os::unix::fs::MetadataExt;
        assert!(
            fs::metadata(&to).unwrap().blocks() * 512 < 1 << 20,
            "the holes are not written"
        );
    }
}
