"""Paths shown to clients: relative to the media folder, the innermost one, never the disk's layout."""

from glimpse.search.paths import PathDisplay


def test_a_path_is_shown_from_its_media_folders_name():
    paths = PathDisplay(["/srv/shop/images", "/srv/archive/"])
    assert paths.show("/srv/shop/images/GL007.jpg") == "images/GL007.jpg"
    assert paths.show("/srv/archive/2024/dock.mp4") == "archive/2024/dock.mp4"


def test_the_innermost_root_wins_and_a_sibling_with_a_common_prefix_is_not_inside():
    paths = PathDisplay(["/media", "/media/shop"])
    assert paths.show("/media/shop/a.jpg") == "shop/a.jpg"
    assert paths.show("/media2/b.jpg") == "b.jpg"  # not under /media: only its name is shown


def test_full_paths_when_asked():
    assert PathDisplay(["/media"], full=True).show("/media/a.jpg") == "/media/a.jpg"
