"""Downloading and checking dataset files, with torchvision.datasets.utils' names.

    download_and_extract_archive(url, root, md5="c58f30108f718f92721af3b95e74349a")
"""
import hashlib
import os
import tarfile
import urllib.error
import urllib.request
import zipfile


def calculate_md5(fpath, chunk_size=1024 * 1024):
    digest = hashlib.md5()
    with open(fpath, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def check_md5(fpath, md5, **kwargs):
    return md5 == calculate_md5(fpath, **kwargs)


def check_integrity(fpath, md5=None):
    """Whether fpath is a file and (when md5 is given) has that md5."""
    if not os.path.isfile(fpath):
        return False
    return md5 is None or check_md5(fpath, md5)


def download_url(url, root, filename=None, md5=None):
    """Fetch url into root/filename (default: the url's last part) unless a file with that md5 is there.

    The download goes to a temporary name and is renamed once complete and verified, so an
    interrupted or corrupted download never leaves a file that looks finished.
    """
    root = os.path.expanduser(root)
    filename = filename or os.path.basename(url)
    fpath = os.path.join(root, filename)
    os.makedirs(root, exist_ok=True)
    if check_integrity(fpath, md5):
        return
    partial = fpath + ".part"
    try:
        urllib.request.urlretrieve(url, partial)
    except (urllib.error.URLError, OSError) as error:
        if os.path.exists(partial):
            os.remove(partial)
        raise RuntimeError(f"Error downloading {url}: {error}") from None
    if not check_integrity(partial, md5):
        actual = calculate_md5(partial)
        os.remove(partial)
        raise RuntimeError(f"File not found or corrupted. Checksum mismatch for {url}: expected md5 {md5}, "
                           f"got {actual}")
    os.replace(partial, fpath)


def extract_archive(from_path, to_path=None, remove_finished=False):
    """Unpack a .tar(.gz/.bz2/.xz) or .zip archive into to_path (default: its folder); returns to_path.

    Tar members that would land outside to_path (absolute paths, "..", links out) are refused
    (tarfile's "data" filter).
    """
    to_path = os.path.dirname(from_path) if to_path is None else to_path
    if zipfile.is_zipfile(from_path):
        with zipfile.ZipFile(from_path) as archive:
            root = os.path.realpath(to_path)
            for name in archive.namelist():
                target = os.path.realpath(os.path.join(root, name))
                if target != root and not target.startswith(root + os.sep):
                    raise RuntimeError(f"{from_path}: member {name!r} would be extracted outside {to_path}")
            archive.extractall(to_path)
    else:
        try:
            with tarfile.open(from_path) as archive:
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(to_path, filter="data")
                else:  # Pythons before the extraction filters: plain files and folders inside to_path only
                    root = os.path.realpath(to_path)
                    for member in archive.getmembers():
                        target = os.path.realpath(os.path.join(root, member.name))
                        if not (member.isfile() or member.isdir()) or (
                                target != root and not target.startswith(root + os.sep)):
                            raise RuntimeError(f"{from_path}: member {member.name!r} would be extracted outside "
                                               f"{to_path} or is not a plain file")
                    archive.extractall(to_path)
        except tarfile.TarError as error:
            raise RuntimeError(f"{from_path} is not a readable archive: {error}") from None
    if remove_finished:
        os.remove(from_path)
    return to_path


def download_and_extract_archive(url, download_root, extract_root=None, filename=None, md5=None,
                                 remove_finished=False):
    download_root = os.path.expanduser(download_root)
    extract_root = extract_root or download_root
    filename = filename or os.path.basename(url)
    download_url(url, download_root, filename, md5)
    archive = os.path.join(download_root, filename)
    print(f"Extracting {archive} to {extract_root}")
    extract_archive(archive, extract_root, remove_finished)
