"""Glimpse web UI (Streamlit): search a library of images and videos through the search API.

Run with ``glimpse ui`` (or ``streamlit run webui/app.py``). The page is a client of the API over
HTTP only (``glimpse.webui.client``). The settings it reads (``GLIMPSE_API_URL``, ``GLIMPSE_API_KEY``,
``GLIMPSE_PUBLIC_API_URL``, ``GLIMPSE_UI_PAGE_SIZE``, ``GLIMPSE_UI_MAX_VIDEO_MB``) are described in
``glimpse.webui.config``.

The rooms: ``config`` (settings), ``client`` (HTTP), ``api_access`` (cached calls, where media comes
from), ``formatting`` (what the page says, no Streamlit), ``state`` (session state and callbacks),
``views`` (rendering). Streamlit runs this file from the top on every interaction.
"""

from glimpse.webui.views import main

main()
