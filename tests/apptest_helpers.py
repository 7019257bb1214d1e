"""Helpers for Streamlit AppTest sessions shared by the app tests."""


def uploader(at, key: str = "upload"):
    """The file uploader with widget key `key` (the sidebar has several: image, own model, dataset zip)."""
    return next(u for u in at.get("file_uploader") if u.key == key)
