import pytest

from pipelines.settings import ConfigError, Settings, load_settings


def test_defaults_without_a_file():
    s = load_settings(None)
    assert s.ingest.max_bad_share == 0.05
    assert s.currency == "USD"
    assert s.schedule.cron == "0 2 * * *"


def test_example_config_is_valid():
    from pipelines.paths import PROJECT_ROOT

    s = load_settings(PROJECT_ROOT / "config" / "cxalign.example.yml")
    assert isinstance(s, Settings)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ingest:\n  max_bad_shar: 0.1\n", "ingest.max_bad_shar: unknown setting"),
        (
            "ingest:\n  max_bad_share: 2\n",
            "ingest.max_bad_share: Input should be less than or equal to 1",
        ),
        ("sources:\n  tickets: {}\n", "unknown source 'tickets'"),
        ("schedule:\n  cron: '0 2 * *'\n", "must have five fields"),
        ("currency: usd\n", "currency: String should match pattern"),
        ("- a\n- b\n", "must be a mapping"),
        # accepted here, and failed only at run time for every file of the source
        ("sources:\n  accounts: {encoding: cp1252}\n", "encoding 'cp1252' cannot be read"),
    ],
)
def test_bad_config_names_the_setting(tmp_path, text, message):
    p = tmp_path / "cx.yml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(p)
    assert str(p) in str(err.value)
    assert message in str(err.value)


def test_execution_targets_in_config_are_checked(tmp_path):
    p = tmp_path / "cx.yml"
    p.write_text("alignment:\n  execution_targets:\n    csat: [4.5, 3.5]\n")
    with pytest.raises(ConfigError, match="csat target 3.5 must be above its floor 4.5"):
        load_settings(p)
    p.write_text("alignment:\n  execution_targets:\n    csat: [3.5, 4.5]\n")
    assert load_settings(p).alignment.execution_targets == {"csat": (3.5, 4.5)}


def test_model_stages_hold_duckdb_to_their_own_memory_limit(tmp_path):
    from pipelines.settings import DuckDBSettings
    from pipelines.warehouse import connect

    def limit(duck: DuckDBSettings) -> str:
        con = connect(tmp_path / "w.duckdb", duck)
        try:
            return con.execute("select current_setting('memory_limit')").fetchone()[0]
        finally:
            con.close()

    duck = DuckDBSettings(memory_limit="6GB")
    assert duck.for_models().memory_limit == "2GB"
    assert limit(duck.for_models()) == limit(DuckDBSettings(memory_limit="2GB")) != limit(duck)
    # Unset: the model stages get the general limit; and never more than it.
    unset = DuckDBSettings(memory_limit="6GB", models_memory_limit=None)
    assert unset.for_models().memory_limit == "6GB"
    assert DuckDBSettings(memory_limit="1500MB").for_models().memory_limit == "1500MB"


def test_sizes_are_read_as_duckdb_reads_them(tmp_path):
    from pipelines.settings import parse_size

    assert parse_size("2GB") == 2 * 10**9 and parse_size("512MiB") == 512 * 2**20
    assert parse_size(" 1.5 gb") == 1_500_000_000
    p = tmp_path / "cx.yml"
    p.write_text("models:\n  memory_budget: 5GB\n")
    assert load_settings(p).models.memory_budget_bytes == 5 * 10**9
    for key in ("duckdb:\n  memory_limit", "models:\n  memory_budget"):
        p.write_text(f"{key}: 8 gigs\n")
        with pytest.raises(ConfigError, match="'8 gigs' is not a size such as 2GB"):
            load_settings(p)
