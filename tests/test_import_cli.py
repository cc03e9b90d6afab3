"""`parta import roster.csv --school …`: the operator's way, all or nothing, then reconciled."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from pathlib import Path

from sqlalchemy import select

from parta.deployment import LocalDeployment
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.models import Region
from provisioning.services import schools as svc


async def parta(region: LocalDeployment, *args: str) -> tuple[int, str]:
    env = {**os.environ, "PARTA_VAR_DIR": str(region.settings.var_dir)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parta", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 300)
    return process.returncode or 0, output.decode()


async def test_import_from_the_command_line(region: LocalDeployment, tmp_path: Path) -> None:
    slug = f"cli-{secrets.token_hex(3)}"
    engine = make_engine(region.settings.sqlalchemy_url)
    try:
        with make_session_factory(engine)() as session:
            region_row = session.scalar(select(Region))
            assert region_row is not None
            svc.create_school(session, region_row, "Гимназия", academic_year=2026, slug=slug)
            session.commit()
    finally:
        engine.dispose()
    good = tmp_path / "roster.csv"
    good.write_text("класс,роль,ФИО\n4Б,ученик,Кирилл Волков\n4Б,учитель,Марина Волкова\n")
    code, output = await parta(region, "import", str(good), "--school", slug)
    assert code == 1  # a class is created only when the operator says so
    assert "row 2: the school has no class 4Б" in output and "row 3: the school" in output
    assert "--create-classes 4Б" in output
    code, output = await parta(
        region, "import", str(good), "--school", slug, "--create-classes", "4Б"
    )
    assert code == 0, output
    assert "created 2, moved 0, unchanged 0; new classes: 4Б" in output
    assert "reconciled:" in output

    bad = tmp_path / "bad.csv"
    bad.write_text("класс,роль,ФИО\n4Б,ученик,\n")
    code, output = await parta(region, "import", str(bad), "--school", slug)
    assert code == 1
    assert "row 2: the name is empty or too short" in output and "nothing changed" in output

    code, output = await parta(region, "import", str(good), "--school", "no-such-school")
    assert code == 1 and "There is no school with the address 'no-such-school'" in output
