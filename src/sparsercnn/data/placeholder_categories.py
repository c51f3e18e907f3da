"""Categories an annotation tool adds beside the classes (Roboflow's project category,
labelme2coco's ``_background_``): trained, each is a class that never occurs.
"""

from __future__ import annotations

from typing import Any

from sparsercnn.data.entry_ids import id_key
from sparsercnn.data.issues import Issue
from sparsercnn.text import listing

# Names annotation tools give a background class (labelme2coco: "_background_"), casefolded.
_BACKGROUND_NAMES = frozenset({"_background_", "__background__", "background"})


def placeholder_categories(categories: list[dict[str, Any]], annotations: list[Any]) -> list[Issue]:
    """A ``placeholder_category`` warning for every valid category that no annotation entry
    refers to and that an annotation tool added beside the classes: one the others name as
    their ``supercategory`` (Roboflow's project category, id 0), or one named as a background
    class (labelme2coco's ``_background_``). Trained, it is a class that never occurs."""
    used = {id_key(ann.get("category_id")) for ann in annotations if isinstance(ann, dict)}
    issues = []
    for category in categories:
        cat_id, name = category["id"], category["name"]
        if cat_id in used:
            continue
        children = [
            other["id"]
            for other in categories
            if other is not category and other.get("supercategory") == name
        ]
        if children:
            ids = listing([str(child) for child in children], limit=5)
            what = (
                f"is the 'supercategory' of categories {ids} (as the project category of a "
                "Roboflow export is)"
            )
        elif name.casefold() in _BACKGROUND_NAMES:
            what = (
                "is named as a background class (as labelme2coco writes one): Sparse R-CNN needs "
                "none, every proposal left unmatched learns background"
            )
        else:
            continue
        message = (
            f"category {cat_id} {name!r} has no annotation and {what}; it is trained as a class "
            "that never occurs (an extra output): remove it from 'categories'"
        )
        issues.append(Issue("warning", "placeholder_category", message))
    return issues
