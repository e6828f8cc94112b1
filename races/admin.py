"""Admin for staff: classes, racers, schedules (with their races inline) and races.

Writes that carry rules (start now, finish, cancel, one-off races) go through
``races.services``; a rule broken shows as an admin message, never a 500.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV

from .models import Race, RaceClass, Racer, RaceSchedule, ResultVoid
from .resources import RacerResource
from .services import race_cancel, race_create, race_finish, race_start_now, race_update, result_void

VOID_CHOICES_MAX = 1000  # results offered in the void form (a race has at most 1,000 racers)


class VoidResultForm(forms.Form):
    racer_id = forms.TypedChoiceField(label="Racer", coerce=int)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000, help_text="Kept in the log.")

    def __init__(self, *args, results=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["racer_id"].choices = [(r.racer_id, f"{r.name} (#{r.racer_id}) — {r.score:,.1f}") for r in results]


@admin.register(RaceClass)
class RaceClassAdmin(admin.ModelAdmin):
    list_display = ("name", "display_order", "enabled", "schedule_count", "current_race")
    list_editable = ("display_order", "enabled")
    list_filter = ("enabled",)
    search_fields = ("name", "description")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_schedule_count=Count("schedules", distinct=True))

    @admin.display(description="schedules", ordering="_schedule_count")
    def schedule_count(self, obj: RaceClass) -> int:
        return obj._schedule_count

    @admin.display(description="current race")
    def current_race(self, obj: RaceClass) -> str:
        race = Race.objects.running_at(timezone.now()).filter(race_class=obj).first()
        return str(race.pk) if race else "—"


@admin.register(Racer)
class RacerAdmin(ImportExportModelAdmin):
    """Racers; "Import" takes a CSV file with the columns racer_id, name (see races/resources.py)."""

    resource_classes = (RacerResource,)
    import_formats = (CSV,)
    export_formats = (CSV,)
    import_template_name = "admin/races/racer/import.html"

    def generate_log_entries(self, result, request):
        # One history entry per import (who, what file, how many), not 40,000 entries of one racer each.
        totals = result.totals
        LogEntry.objects.create(
            user_id=request.user.pk,
            content_type_id=ContentType.objects.get_for_model(Racer).pk,
            object_repr=f"CSV import: {totals['new']} new, {totals['update']} updated, {totals['skip']} unchanged",
            action_flag=ADDITION,
            change_message=f"Imported from {request.POST.get('original_file_name', 'a CSV file')}",
        )

    list_display = ("racer_id", "name", "user", "created_at")
    search_fields = ("name", "=racer_id", "user__username")
    raw_id_fields = ("user",)
    ordering = ("racer_id",)


class RaceInline(admin.TabularInline):
    model = Race
    fields = ("starts_at", "ends_at", "status")
    readonly_fields = ("starts_at", "ends_at", "status")
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-starts_at",)
    max_num = 0  # races of a schedule are made by rotation, not typed in

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-starts_at")


@admin.register(RaceSchedule)
class RaceScheduleAdmin(admin.ModelAdmin):
    list_display = ("race_class", "starts_at", "ends_at", "race_minutes", "enabled", "race_count")
    list_filter = ("enabled", "race_class")
    list_editable = ("enabled",)
    search_fields = ("race_class__name",)
    date_hierarchy = "starts_at"
    inlines = (RaceInline,)
    fieldsets = ((None, {"fields": ("race_class", "starts_at", "ends_at", "race_minutes", "enabled")}),)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("race_class").annotate(_race_count=Count("races"))

    @admin.display(description="races", ordering="_race_count")
    def race_count(self, obj: RaceSchedule) -> int:
        return obj._race_count


@admin.register(Race)
class RaceAdmin(admin.ModelAdmin):
    list_display = ("id", "race_class", "starts_at", "ends_at", "status", "state", "duration_display", "one_off")
    list_filter = ("status", "race_class", ("schedule", admin.EmptyFieldListFilter))
    search_fields = ("=id", "race_class__name")
    date_hierarchy = "starts_at"
    list_select_related = ("race_class",)
    # status: rotation and the actions below set it (through the services, which push the change);
    # schedule: a schedule's races are made by rotation, a race added here is a one-off.
    readonly_fields = ("schedule", "status", "state", "duration_display", "racers", "created_at")
    fields = ("race_class", "schedule", "starts_at", "ends_at", "status", "state", "duration_display", "racers")
    actions = ("start_now", "finish_now", "cancel", "void_result")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The form has already run the model's checks; what is left are the services' rules
        # (a running race keeps its start...). The admin's transaction is rolled back and the
        # refusal shown as a message on the same form.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as error:
            self.message_user(request, "; ".join(error.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj: Race, form, change: bool) -> None:
        if change:
            saved = race_update(race=obj, race_class=obj.race_class, starts_at=obj.starts_at, ends_at=obj.ends_at)
        else:
            saved = race_create(race_class=obj.race_class, starts_at=obj.starts_at, ends_at=obj.ends_at)
        # The admin goes on with ``obj`` (messages, log entry): make it the saved row.
        obj.pk, obj.status, obj.schedule_id, obj.created_at = (
            saved.pk,
            saved.status,
            saved.schedule_id,
            saved.created_at,
        )
        obj._state.adding = False

    @admin.display(description="state now")
    def state(self, obj: Race) -> str:
        if not obj.pk:
            return "—"
        return obj.state_at(timezone.now())

    @admin.display(description="duration")
    def duration_display(self, obj: Race) -> str:
        if not (obj.starts_at and obj.ends_at):
            return "—"
        minutes, seconds = divmod(int(obj.duration.total_seconds()), 60)
        return f"{minutes} min" + (f" {seconds} s" if seconds else "")

    @admin.display(boolean=True, description="one-off")
    def one_off(self, obj: Race) -> bool:
        return obj.schedule_id is None

    @admin.display(description="racers")
    def racers(self, obj: Race) -> str:
        """Racers seen in the live standings of the race (from the results store)."""
        if not obj.pk:
            return "—"
        try:
            from processors.table import get_results_table

            standings = get_results_table().live_standings(obj.pk)
        except Exception:  # noqa: BLE001 - the store may be down or not set up; the page still loads
            return "unavailable"
        return str(len(standings.rows)) if standings else "0"

    def _run(self, request, queryset, service, verb: str) -> None:
        done = 0
        for race in queryset:
            try:
                service(race=race)
                done += 1
            except ValidationError as error:
                self.message_user(request, f"Race {race.pk}: {'; '.join(error.messages)}", messages.ERROR)
        if done:
            self.message_user(request, f"{verb} {done} race(s).", messages.SUCCESS)

    @admin.action(description="Start selected races now")
    def start_now(self, request, queryset):
        self._run(request, queryset, race_start_now, "Started")

    @admin.action(description="Finish selected races now")
    def finish_now(self, request, queryset):
        self._run(request, queryset, race_finish, "Finished")

    @admin.action(description="Cancel selected races")
    def cancel(self, request, queryset):
        self._run(request, queryset, race_cancel, "Cancelled")

    @admin.action(description="Void a racer's result of the selected race…")
    def void_result(self, request, queryset):
        """Intermediate page: pick the racer and give the reason; ``result_void`` does the rest."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one race to void a result of.", messages.WARNING)
            return None
        race = queryset.get()
        try:
            from processors.table import StoreUnavailable, get_results_table

            results = get_results_table().race_results(race.pk, limit=VOID_CHOICES_MAX).items
        except StoreUnavailable as error:
            self.message_user(request, f"The results store is unavailable: {error}", messages.ERROR)
            return None
        if not results:
            self.message_user(request, f"Race {race.pk} has no results to void.", messages.WARNING)
            return None
        form = VoidResultForm(request.POST if "apply" in request.POST else None, results=results)
        if form.is_valid():
            try:
                void = result_void(
                    race=race,
                    racer_id=form.cleaned_data["racer_id"],
                    reason=form.cleaned_data["reason"],
                    user=request.user,
                )
            except ValidationError as error:
                self.message_user(request, "; ".join(error.messages), messages.ERROR)
                return None
            after = "none left" if void.best_after is None else f"{void.best_after:,.1f}"
            self.message_user(
                request,
                f"Voided {void.racer_name}'s result ({void.score:,.1f}) of race {race.pk}; "
                f"personal best in {race.race_class}: {after}.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Void a result of race {race.pk}",
            "race": race,
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/races/race/void_result.html", context)


@admin.register(ResultVoid)
class ResultVoidAdmin(admin.ModelAdmin):
    """The log of voided results: read-only (a void is made with the action on races)."""

    list_display = ("voided_at", "race", "racer_name", "racer_id", "score", "best_before", "best_after", "voided_by")
    list_filter = ("race__race_class",)
    search_fields = ("racer_name", "=racer_id", "=race__id", "reason")
    list_select_related = ("race__race_class", "voided_by")
    readonly_fields = [field.name for field in ResultVoid._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
