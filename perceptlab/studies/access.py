"""Who may see and change a study: object-level access for staff.

A study's dashboard, report and exports hold its raw judgments with participant ids
(Prolific, MTurk), so staff status alone is not enough. A staff account sees a study if
it is a superuser, the study's owner (who created it) or one of its collaborators; it
changes the study if it also holds Django's change permission on studies (a superuser
holds every permission). The admin's lists show only the studies a user sees, and the
rating data listed there (sessions, judgments) only those studies' data.

Everything that checks access calls these functions; nothing tests ``is_staff`` alone.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet

from perceptlab.studies.models import Study


def _staff(user: Any) -> bool:
    return bool(user is not None and user.is_active and user.is_staff)


def visible_studies(user: Any) -> QuerySet[Study]:
    """The studies ``user`` sees (none for anyone but active staff)."""
    if not _staff(user):
        return Study.objects.none()
    if user.is_superuser:
        return Study.objects.all()
    mine = Study.objects.filter(Q(owner=user) | Q(collaborators=user)).values("pk")
    return Study.objects.filter(pk__in=mine)


def can_view(user: Any, study: Study) -> bool:
    if not _staff(user):
        return False
    if user.is_superuser or study.owner_id == user.pk:
        return True
    return study.collaborators.filter(pk=user.pk).exists()


def can_change(user: Any, study: Study) -> bool:
    return can_view(user, study) and bool(user.has_perm("studies.change_study"))


def sees_any(user: Any) -> bool:
    """Whether ``user`` sees at least one study (the admin shows them the studies app)."""
    return visible_studies(user).exists()


def require_view(user: Any, study: Study) -> None:
    """Raise PermissionDenied (403) unless ``user`` sees ``study``."""
    if not can_view(user, study):
        raise PermissionDenied(f"no access to study {study.pk}")
