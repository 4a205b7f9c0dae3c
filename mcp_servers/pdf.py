"""MCP server ``pdf``: text and tables from PDF files in the workspace (pdfplumber), tables as JSON or CSV.

Parsing runs in a worker thread with a page cap; pdfplumber is imported on first use so the server starts fast.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_servers.workspace import ServerOptions, confine, confine_read, new_server, serve

if TYPE_CHECKING:
    from pdfplumber.pdf import PDF

__all__ = ["build", "main", "parse_pages"]

MAX_PAGES = 200
MAX_TEXT_CHARS = 200_000


class PageText(BaseModel):
    page: int = Field(description="1-based page number")
    text: str


class PdfText(BaseModel):
    path: str
    page_count: int
    pages: list[PageText]
    truncated: bool


class PdfTable(BaseModel):
    page: int
    index: int = Field(description="0-based index of the table on its page")
    rows: list[list[str]]
    csv: str | None = Field(default=None, description="the table as CSV when format='csv'")
    written: str | None = Field(default=None, description="workspace path the CSV/JSON was written to")


class PdfTables(BaseModel):
    path: str
    page_count: int
    tables: list[PdfTable]


def parse_pages(spec: str | None, page_count: int) -> list[int]:
    """'1-3,5' → [1, 2, 3, 5] (1-based, within the document); None → every page."""
    if spec is None or not spec.strip():
        return list(range(1, page_count + 1))
    pages: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            start, end = int(lo), int(hi or lo)
        except ValueError:
            raise ToolError(f"bad page range {part.strip()!r}; use e.g. '1-3,5'") from None
        if not 1 <= start <= end <= page_count:
            raise ToolError(f"page range {part.strip()!r} is outside 1-{page_count}")
        pages.extend(p for p in range(start, end + 1) if p not in pages)
    return pages


def _open(path: Path) -> PDF:
    import pdfplumber
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfplumber.utils.exceptions import PdfminerException

    try:
        return pdfplumber.open(path)
    except (PdfminerException, PDFSyntaxError, ValueError, OSError) as exc:
        raise ToolError(f"{path.name} is not a readable PDF ({exc}); check the file with fs.list / exec.run "
                        f"`file {path.name}`") from exc


def _text(path: Path, rel: str, pages: str | None) -> PdfText:
    with _open(path) as pdf:
        wanted = parse_pages(pages, len(pdf.pages))
        out: list[PageText] = []
        total = 0
        for number in wanted[:MAX_PAGES]:
            text = pdf.pages[number - 1].extract_text() or ""
            out.append(PageText(page=number, text=text))
            total += len(text)
            if total > MAX_TEXT_CHARS:
                break
        return PdfText(path=rel, page_count=len(pdf.pages), pages=out, truncated=len(out) < len(wanted))


def _tables(path: Path, rel: str, pages: str | None, fmt: Literal["json", "csv"]) -> PdfTables:
    with _open(path) as pdf:
        found: list[PdfTable] = []
        for number in parse_pages(pages, len(pdf.pages))[:MAX_PAGES]:
            for index, table in enumerate(pdf.pages[number - 1].extract_tables()):
                rows = [[cell if cell is not None else "" for cell in row] for row in table]
                found.append(PdfTable(page=number, index=index, rows=rows,
                                      csv=_to_csv(rows) if fmt == "csv" else None))
        return PdfTables(path=rel, page_count=len(pdf.pages), tables=found)


def _to_csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def build(options: ServerOptions) -> FastMCP:
    workspace = options.workspace
    mcp = new_server("pdf", instructions="Text and tables from PDF files in the workspace.")

    def locate(path: str) -> tuple[Path, str]:
        target = confine_read(options, path)
        if not target.is_file():
            raise ToolError(f"{path!r} is not a file; call fs.list to see what exists")
        ws = workspace.resolve()
        return target, str(target.relative_to(ws)) if ws in target.parents else str(target)

    @mcp.tool(annotations=ToolAnnotations(title="PDF text", readOnlyHint=True, openWorldHint=False))
    async def text(path: str, pages: Annotated[str | None, Field(description="e.g. '1-3,5'; all if omitted")] = None,
                   ) -> PdfText:
        """Extract the text of a PDF, page by page."""
        target, rel = locate(path)
        return await asyncio.to_thread(_text, target, rel, pages)

    @mcp.tool(annotations=ToolAnnotations(title="PDF tables", readOnlyHint=False, destructiveHint=False,
                                          openWorldHint=False))
    async def tables(path: str, pages: Annotated[str | None, Field(description="e.g. '2'; all if omitted")] = None,
                     format: Literal["json", "csv"] = "json",
                     out_dir: Annotated[str | None, Field(description="write each table to this workspace folder as "
                                                          "<pdf>-p<page>-t<index>.csv/.json")] = None,
                     ) -> PdfTables:
        """Extract tables (ruled or aligned) from a PDF as rows of cells, or CSV; optionally write them to files."""
        target, rel = locate(path)
        result = await asyncio.to_thread(_tables, target, rel, pages, format)
        if out_dir is not None:
            folder = confine(workspace, out_dir, arg="out_dir", hidden=options.hidden)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # out_dir names a file, or the file system refuses
                raise ToolError(f"cannot create out_dir {out_dir!r}: {exc.strerror}") from exc
            for t in result.tables:
                file = str(folder / f"{target.stem}-p{t.page}-t{t.index}.{format}")
                name = confine(workspace, file, arg="out_dir", hidden=options.hidden)
                name.write_text(t.csv if t.csv is not None else json.dumps(t.rows, ensure_ascii=False))
                t.written = str(name.relative_to(workspace.resolve()))
        return result

    return mcp


def main(argv: list[str] | None = None) -> None:
    serve(build, prog="naestro-mcp-pdf", description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
