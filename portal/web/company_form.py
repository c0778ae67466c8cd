"""The Email tab's form: which groups a company overrides, and the values each group shows."""

from flask import request
from werkzeug.datastructures import MultiDict

from portal.models import Company
from portal.settings.resolution import (
    GROUPS,
    INHERIT_WHEN_EMPTY,
    SOURCE_COMPANY,
    EffectiveSettings,
    resolve,
)
from portal.settings.saving import NOT_STORED
from portal.web.forms import FORM_GROUP_OF, CompanyMailForm

OVERRIDE = "company"  # the value of an "Override" choice; "global" follows the global settings


def posted_groups() -> frozenset[str]:
    """The groups the submitted tab overrides (a company server brings its own authentication)."""
    form = request.form
    if not any(f"override_{group}" in form for group in GROUPS):
        # A client posting the whole form under the one switch: every group, or none.
        return frozenset(GROUPS) if form.get("use_own") else frozenset()
    groups = {group for group in GROUPS if form.get(f"override_{group}") == OVERRIDE}
    if "server" in groups:
        groups.add("auth")
    return frozenset(groups)


def _shown_groups() -> set[str]:
    """The groups whose inputs the submitted page showed (the others were values in force)."""
    if "shown" in request.form:
        return set(request.form.getlist("shown"))
    return set(GROUPS) if "host" in request.form else set()


def _in_force_data(effective: EffectiveSettings, group: str, overriding: bool) -> MultiDict:
    """A group's inputs filled with the values in force, as a fresh override starts from."""
    data: MultiDict = MultiDict()
    for name in GROUPS[group]:
        value = getattr(effective, name)
        if name in NOT_STORED or value is None or value is False:
            continue
        if overriding and name in INHERIT_WHEN_EMPTY and effective.source(name) != SOURCE_COMPANY:
            continue  # left empty, the global value keeps applying
        data.add(name, "y" if value is True else str(value))
    return data


def company_form(company: Company) -> CompanyMailForm:
    """The tab's form: posted values of the groups shown, the values in force for the others."""
    effective = resolve(company)
    posting = request.method == "POST"
    groups = posted_groups() if posting else effective.overrides
    shown = _shown_groups() if posting else set()
    data: MultiDict = MultiDict()
    if posting:
        for key, value in request.form.items(multi=True):
            group = FORM_GROUP_OF.get(key)
            if group is None or (group in shown and group in groups):
                data.add(key, value)
    for group in GROUPS:
        if not (posting and group in shown and group in groups):
            for key, value in _in_force_data(effective, group, group in groups).items(multi=True):
                data.add(key, value)
    if posting and "server" in shown and "server" in groups:
        for key, upload in request.files.items(multi=True):  # the CA bundle's file
            data.add(key, upload)
    return CompanyMailForm(formdata=data, groups=groups, in_force=effective)


def unshown(form: CompanyMailForm) -> bool:
    """Whether an overridden group's inputs were not on the submitted page (nothing to save)."""
    return any(group not in _shown_groups() for group in form.groups)
