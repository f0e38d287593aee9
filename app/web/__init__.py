"""The web page (README "The web page"): submit a list, watch a job, read and download its
results. Server-rendered Jinja2 templates and a little plain JavaScript, all in this package
(nothing is fetched from elsewhere at run time). The pages hold no data: their scripts call
the API, with the header secret the page asks for."""
