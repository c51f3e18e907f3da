"""The label map: dataset category ids <-> contiguous labels ``0..K-1`` and class names.

Labels are ordered by category id (spec 1.4: COCO's 80 classes are numbered by increasing
category id), whatever the order of the ``categories`` list in the JSON file. The map travels in
every checkpoint through :meth:`CategoryMap.to_dict` / :meth:`CategoryMap.from_dict`, so that
predictions can be written back with the dataset's own category ids and names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sparsercnn.json_values import is_int
from sparsercnn.structures import distinct_names


class CategoryMap:
    """Bijection between dataset category ids and contiguous labels, with class names.

    Args:
        category_ids: distinct integer category ids, in any order.
        names: one name per entry of ``category_ids`` (same order).

    Raises:
        ValueError: ids are not integers or repeat, or ``names`` has the wrong length or type.
    """

    def __init__(self, category_ids: Sequence[int], names: Sequence[str]) -> None:
        if len(category_ids) != len(names):
            raise ValueError(
                f"CategoryMap needs one name per category id, got {len(category_ids)} ids and "
                f"{len(names)} names"
            )
        seen: set[int] = set()
        for cat_id, name in zip(category_ids, names, strict=True):
            if not is_int(cat_id):
                raise ValueError(f"category id {cat_id!r} is not an integer")
            if cat_id in seen:
                raise ValueError(f"category id {cat_id} appears more than once")
            if not isinstance(name, str):
                raise ValueError(f"name of category {cat_id} is {name!r}, not a string")
            seen.add(cat_id)
        order = sorted(range(len(category_ids)), key=lambda i: category_ids[i])
        self._category_ids: tuple[int, ...] = tuple(int(category_ids[i]) for i in order)
        self._names: tuple[str, ...] = tuple(names[i] for i in order)
        self._labels = {cat_id: label for label, cat_id in enumerate(self._category_ids)}

    @staticmethod
    def from_coco(categories: Iterable[Mapping[str, Any]]) -> CategoryMap:
        """Build the map from a COCO ``categories`` list (entries with ``id`` and ``name``).

        Raises:
            ValueError: an entry is not a mapping, lacks ``id``/``name``, or an id repeats.
        """
        ids: list[int] = []
        names: list[str] = []
        for position, entry in enumerate(categories):
            if not isinstance(entry, Mapping) or "id" not in entry or "name" not in entry:
                raise ValueError(
                    f"categories[{position}] = {entry!r} must be an object with 'id' and 'name'"
                )
            ids.append(entry["id"])
            names.append(entry["name"])
        return CategoryMap(ids, names)

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> CategoryMap:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: ``data`` does not have the layout :meth:`to_dict` writes.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("categories"), list):
            raise ValueError(
                f"a label map must be {{'categories': [{{'id': ..., 'name': ...}}, ...]}}, "
                f"got {data!r:.200}"
            )
        return CategoryMap.from_coco(data["categories"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, ``{"categories": [{"id", "name", "label"}, ...]}`` in label order."""
        return {
            "categories": [
                {"id": cat_id, "name": name, "label": label}
                for label, (cat_id, name) in enumerate(
                    zip(self._category_ids, self._names, strict=True)
                )
            ]
        }

    @property
    def category_ids(self) -> list[int]:
        """Dataset category id of every label, ``category_ids[label]``."""
        return list(self._category_ids)

    @property
    def names(self) -> list[str]:
        """Class name of every label, ``names[label]``."""
        return list(self._names)

    @property
    def distinct_names(self) -> list[str]:
        """:attr:`names` made distinct for tables and keys (see
        :func:`~sparsercnn.structures.distinct_names`)."""
        return distinct_names(self._category_ids, self._names)

    @property
    def num_classes(self) -> int:
        return len(self._category_ids)

    def to_label(self, category_id: int) -> int:
        """Contiguous label of a dataset category id.

        Raises:
            KeyError: the id is not one of the dataset's categories.
        """
        try:
            return self._labels[category_id]
        except KeyError:
            raise KeyError(
                f"category id {category_id!r} is not in the label map "
                f"(known ids: {list(self._category_ids)[:20]}"
                f"{' ...' if self.num_classes > 20 else ''})"
            ) from None

    def __len__(self) -> int:
        return self.num_classes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoryMap):
            return NotImplemented
        return self._category_ids == other._category_ids and self._names == other._names

    def __hash__(self) -> int:
        return hash((self._category_ids, self._names))

    def __repr__(self) -> str:
        pairs = ", ".join(
            f"{i}:{n!r}" for i, n in zip(self._category_ids[:5], self._names[:5], strict=True)
        )
        more = ", ..." if self.num_classes > 5 else ""
        return f"CategoryMap({self.num_classes} classes: {pairs}{more})"


def check_same_categories(
    expected: CategoryMap,
    found: CategoryMap,
    what: str,
    expected_from: str = "the model was trained on",
) -> None:
    """Raise when two label maps differ: labels would silently mean other classes.

    Args:
        expected: the reference map (a model's, a training set's).
        found: the map checked against it.
        what: names the data set of ``found``, as in "{what} has categories ...".
        expected_from: where ``expected`` comes from, as in "... but {expected_from} [...]".

    Raises:
        ValueError: the ids or names differ; it lists the first categories of both and,
            where they share some, the ``(id, name)`` pairs only one of them has, so a
            difference past the first ten categories shows.
    """
    if expected == found:
        return
    found_pairs = list(zip(found.category_ids, found.names, strict=True))
    expected_pairs = list(zip(expected.category_ids, expected.names, strict=True))
    only_found = [pair for pair in found_pairs if pair not in expected_pairs]
    only_expected = [pair for pair in expected_pairs if pair not in found_pairs]
    # Where they share categories, the difference is what to read (past the first ten, too).
    shared = len(only_found) < len(found_pairs)
    parts = [f"alone has {_first_pairs(only_found)}"] if only_found else []
    parts += [f"lacks {_first_pairs(only_expected)}"] if only_expected else []
    difference = f": it {' and '.join(parts)}" if shared else ""
    raise ValueError(
        f"{what} has categories {_first_pairs(found_pairs)} but {expected_from} "
        f"{_first_pairs(expected_pairs)}{difference}; use a dataset with the same COCO "
        "'categories' list"
    )


def _first_pairs(pairs: list[tuple[int, str]], limit: int = 10) -> str:
    """The first ``limit`` ``(id, name)`` pairs as a list, with how many more there are."""
    more = f" and {len(pairs) - limit} more" if len(pairs) > limit else ""
    return f"{pairs[:limit]}{more}"
