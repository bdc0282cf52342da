"""The exclusion policy and the lapse model inside a study's analysis and report: the
study's defaults apply, the report form overrides them, the report says what each rule
removed, and a 2AFC report lists each rater's lapse probability."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from evalkit import rated_study

from perceptlab.evaluation import stored
from perceptlab.evaluation.analysis import AnalysisConfig, trials_frame
from perceptlab.evaluation.forms import ReportOptions
from perceptlab.evaluation.stats.lapse import lapse_fit
from perceptlab.evaluation.study_analysis import analyse_study, config_for, study_frames
from perceptlab.studies.models import Judgment, Session, Study

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_bootstrap(settings: Any) -> None:
    settings.EVALUATION_RESAMPLES = 100


def _flag(study: Study, count: int, flag: str, *, skip: int = 0) -> int:
    judgments = Judgment.objects.filter(trial__session__study=study, trial__kind="test")
    chosen = list(judgments.order_by("id")[skip : skip + count])
    for judgment in chosen:
        judgment.flags = [*judgment.flags, flag]
        judgment.save(update_fields=["flags"])
    return len(chosen)


def _condition_n(analysis: Any) -> int:
    table = analysis.scores
    return int(table.loc[table["level"] == "condition", "n"].sum())


def test_the_studys_policy_drops_flagged_judgments_and_the_report_form_overrides_it() -> None:
    study = rated_study("acr", images=2, raters=4, seed=11)
    total = Judgment.objects.filter(trial__session__study=study, trial__kind="test").count()
    fast = _flag(study, 5, "too_fast")
    _flag(study, 1, "pane_cut", skip=fast)  # not in the default policy
    _, analysis = analyse_study(study, config_for(study))
    assert _condition_n(analysis) == total - fast
    table = analysis.exclusion.set_index("rule")
    assert table.loc["removed: flagged too_fast", "judgments"] == fast
    assert table.loc["kept", "judgments"] == total - fast
    everything = ReportOptions(exclude_flags=(), policy_chosen=True)
    _, kept_all = analyse_study(study, config_for(study, everything))
    assert _condition_n(kept_all) == total
    study.exclude_flags = ["too_fast", "pane_cut"]
    study.save(update_fields=["exclude_flags"])
    _, stricter = analyse_study(study, config_for(study))
    assert _condition_n(stricter) == total - fast - 1  # the pane_cut one was not too fast


def test_a_rater_rule_removes_the_raters_test_judgments() -> None:
    study = rated_study("acr", images=2, raters=4, seed=12, repeat_trials=1)
    session = Session.objects.filter(study=study).order_by("id").first()
    assert session is not None
    repeats = Judgment.objects.filter(trial__session=session, trial__kind="repeat")
    assert repeats.exists()
    for judgment in repeats:
        judgment.flags = ["inconsistent_repeat"]
        judgment.save(update_fields=["flags"])
    options = ReportOptions(exclude_flags=(), max_inconsistency=0.5, policy_chosen=True)
    _, analysis = analyse_study(study, config_for(study, options))
    # every rater whose repeats were mostly inconsistent (the simulated raters' own too)
    out = [
        s
        for s in Session.objects.filter(study=study)
        if _inconsistent_share(s) > 0.5 and s.state != Session.State.SCREENED_OUT
    ]
    assert session in out
    theirs = Judgment.objects.filter(trial__session__in=out, trial__kind="test").count()
    row = analysis.exclusion.set_index("rule").loc["removed: inconsistent repeats > 0.5"]
    assert (row["judgments"], row["raters"]) == (theirs, len(out))
    kept = set(analysis.scores.columns) and _condition_n(analysis)
    assert (
        kept
        == Judgment.objects.filter(trial__session__study=study, trial__kind="test")
        .exclude(trial__session__in=out)
        .count()
    )


def _inconsistent_share(session: Session) -> float:
    repeats = list(Judgment.objects.filter(trial__session=session, trial__kind="repeat"))
    if not repeats:
        return 0.0
    return sum("inconsistent_repeat" in j.flags for j in repeats) / len(repeats)


def test_the_config_survives_its_json_and_its_key_is_stable() -> None:
    study = rated_study("acr", images=1, raters=2, seed=13)
    config = config_for(study, ReportOptions(exclude_flags=("too_fast",), policy_chosen=True))
    again = AnalysisConfig(**config.as_dict())
    assert again == config and stored.options_key(again) == stored.options_key(config)


def test_the_report_states_the_policy_and_lists_lapse_rates_and_significance(
    admin_client: Client,
) -> None:
    study = rated_study(
        "2afc", images=4, raters=6, seed=14, judgments_per_item=6, trials_per_session=24
    )
    page = admin_client.get(reverse("evaluation:report", args=[study.pk])).content.decode()
    assert "Judgments counted and excluded" in page
    assert "judgments flagged too_fast, too_few_flips, pane_hidden" in page
    assert "Rater reliability (lapse model)" in page
    _, analysis = analyse_study(study, config_for(study))
    lapse = analysis.lapse.set_index("rater")
    assert len(lapse) == 6 and lapse["q"].between(0, 1, inclusive="neither").all()
    assert (lapse["q_low"] <= lapse["q"]).all() and (lapse["q"] <= lapse["q_high"]).all()
    # the table is the lapse model fitted on the counted pairs (its statistics are tested
    # against known lapse rates in test_lapse.py)
    data = study_frames(study)
    counted = data.judgments[data.judgments["trial_kind"] == "test"]
    trials = trials_frame(counted, data.stimuli, level="stimulus")
    direct = lapse_fit(trials).raters.set_index("rater")
    assert lapse["q"].to_numpy() == pytest.approx(direct.loc[lapse.index, "q"].to_numpy())
    assert any(m.name == "elo-lapse-map" for m in analysis.models)
    assert "Pairwise significance (Holm)" in page
    _check_significance(study, analysis)


def _check_significance(study: Study, analysis: Any) -> None:
    """Each pair's wins counted from the stored judgments; Holm's adjusted p-values."""
    from scipy.stats import binomtest

    data = study_frames(study)
    condition = data.stimuli.set_index("stimulus")["condition"]
    test = data.judgments[data.judgments["trial_kind"] == "test"]
    table = analysis.significance
    assert len(table) == 6  # four conditions, every pair compared
    for row in table.itertuples():
        pair = test[
            test["a"].map(condition).isin([row.a, row.b])
            & test["b"].map(condition).isin([row.a, row.b])
        ]
        chosen = pair["chosen"].map(condition)
        assert (row.wins_a, row.wins_b) == ((chosen == row.a).sum(), (chosen == row.b).sum())
        expected = binomtest(int(row.wins_a), int(row.wins_a + row.wins_b), 0.5).pvalue
        assert row.p_value == pytest.approx(expected)
    ordered = table.sort_values("p_value")["p_value"].to_numpy()
    m = len(ordered)
    holm = [min(1.0, max((m - j) * ordered[j] for j in range(i + 1))) for i in range(m)]
    assert table.sort_values("p_value")["p_adjusted"].to_numpy() == pytest.approx(holm)
